"""Chunked encoding with a world model: states, transitions and edit embeddings, as float32 NumPy.

One loop for the training probe, the audit, the retrieval bench and edit search. Everything runs
under ``torch.inference_mode`` in chunks of ``chunk`` rows, and only the encoder passes asked for.
Inputs are NumPy arrays or tensors of token ids ``[N, L]`` (and action vectors ``[N, A]``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

#: rows per forward pass
ENCODE_CHUNK = 128

#: the embeddings a transition encoding may add to the four it always computes
#: (``online_before``, ``target_after``, ``pred``, ``predictor_input``)
OPTIONAL_PARTS = frozenset({"online_after", "target_before"})

#: ``embedding`` of :func:`edit_embedding` -> its formula
EDIT_EMBEDDINGS = {
    "target_online": "target(after) − online(before)",
    "online_online": "online(after) − online(before)",
}

Progress = Callable[[int], None]


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float32)


def _device(model):
    return next(model.parameters()).device


def _tensor(x: Any, device, *, tokens: bool):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return (t.long() if tokens else t.float()).to(device)


def chunks(n: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of ``chunk`` rows covering ``range(n)``."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def encode_states(model, tokens: Any, *, target: bool = False, chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """The online (or ``target``) encoder's final readout of every state in ``tokens``: ``[N, D]``."""
    import torch

    device = _device(model)
    model.eval()
    out = []
    with torch.inference_mode():
        for s in chunks(len(tokens), chunk):
            out.append(_np(model.encode(_tensor(tokens[s], device, tokens=True), target=target).z))
    return np.concatenate(out)


def _loop_list(value) -> list | None:
    if value is None:
        return None
    if hasattr(value, "dim") and value.dim() == 3:  # stacked [loops, B, D]
        return [value[i] for i in range(value.shape[0])]
    return list(value)


def _transition_chunk(model, before, after, actions, *, loops: bool, parts: frozenset) -> dict:
    """The embeddings of one chunk as tensors (``None`` for parts not asked for).

    A model with ``encode(tokens, target=)`` runs only the passes needed (a plain audit of the
    training sample needs 3 of the 4); one that offers only ``embed`` computes everything.
    """
    if not hasattr(model, "encode"):
        emb = model.embed(before, after, actions, loops=loops)
        return {"online_before": emb.online_before, "online_after": emb.online_after,
                "target_before": emb.target_before, "target_after": emb.target_after, "pred": emb.pred,
                "predictor_input": emb.predictor_input,
                "loops_before": _loop_list(emb.online_loops_before) if loops else None,
                "loops_after": _loop_list(emb.online_loops_after) if loops else None}
    from wmkit.components import ActionInputs

    online_before = model.encode(before)
    state = model.predictor_input(online_before)
    target_before = model.encode(before, target=True).z if "target_before" in parts or \
        model.starts_from_target else None
    inputs = ActionInputs(vector=actions, before=before, after=after)
    out = {"online_before": online_before.z, "predictor_input": state,
           "pred": model.predict_with(state, inputs, base=target_before),
           "target_after": model.encode(after, target=True).z, "target_before": target_before,
           "online_after": None, "loops_before": None, "loops_after": None}
    if "online_after" in parts or loops:
        online_after = model.encode(after)
        out["online_after"] = online_after.z
        if loops:
            out["loops_before"], out["loops_after"] = list(online_before.loops), list(online_after.loops)
    return out


#: the single embeddings :func:`encode_transitions` returns
TRANSITION_KEYS = ("online_before", "online_after", "target_before", "target_after", "pred", "predictor_input")


def encode_transitions(model, before: Any, after: Any, actions: Any, *, parts: frozenset = OPTIONAL_PARTS,
                       loops: bool = False, chunk: int = ENCODE_CHUNK, progress: Progress | None = None) -> dict:
    """Every embedding of ``N`` transitions: a dict of ``[N, D]`` arrays keyed by :data:`TRANSITION_KEYS`
    (``None`` for an optional part not in ``parts``), plus ``loops_before`` / ``loops_after`` (lists of
    per-loop arrays, or ``None``) when ``loops``. ``progress(n)`` is called after each chunk."""
    import torch

    device = _device(model)
    parts = frozenset(parts)
    acc: dict[str, list] = {k: [] for k in TRANSITION_KEYS}
    lb: list[list] | None = None
    la: list[list] | None = None
    model.eval()
    with torch.inference_mode():
        for s in chunks(len(before), chunk):
            b, a = _tensor(before[s], device, tokens=True), _tensor(after[s], device, tokens=True)
            emb = _transition_chunk(model, b, a, _tensor(actions[s], device, tokens=False), loops=loops, parts=parts)
            if emb["predictor_input"] is None:
                emb["predictor_input"] = emb["online_before"]
            for key in TRANSITION_KEYS:
                acc[key].append(None if emb[key] is None else _np(emb[key]))
            if loops and emb["loops_before"] and emb["loops_after"]:
                if lb is None:
                    lb, la = [[] for _ in emb["loops_before"]], [[] for _ in emb["loops_after"]]
                for i, t in enumerate(emb["loops_before"]):
                    lb[i].append(_np(t))
                for i, t in enumerate(emb["loops_after"]):
                    la[i].append(_np(t))
            if progress is not None:
                progress(b.shape[0])
    out: dict[str, Any] = {k: (None if not v or any(x is None for x in v) else np.concatenate(v))
                           for k, v in acc.items()}
    out["loops_before"] = [np.concatenate(x) for x in lb] if lb else None
    out["loops_after"] = [np.concatenate(x) for x in la] if la else None
    return out


def predict_from(model, state: Any, actions: Any, before: Any, after: Any, *, base: Any = None,
                 chunk: int = ENCODE_CHUNK) -> np.ndarray:
    """Predictions from predictor-input states ``state`` with the given actions (the vectors and the
    edit's token states, for action encoders that read them). ``base`` is target(before) of the
    predicted rows, for models that start from it."""
    import torch

    from wmkit.components import ActionInputs

    device = _device(model)
    out = []
    with torch.inference_mode():
        for s in chunks(len(state), chunk):
            inputs = ActionInputs(vector=_tensor(actions[s], device, tokens=False),
                                  before=_tensor(before[s], device, tokens=True),
                                  after=_tensor(after[s], device, tokens=True))
            b = None if base is None else _tensor(base[s], device, tokens=False)
            out.append(_np(model.predict_with(_tensor(state[s], device, tokens=False), inputs, base=b)))
    return np.concatenate(out)


def edit_of(model, before, after, embedding: str = "target_online"):
    """The edit embedding of one batch of token tensors (see :data:`EDIT_EMBEDDINGS`), as a tensor."""
    z_before = model.encode(before).z
    z_after = model.encode(after, target=embedding == "target_online").z
    return z_after.float() - z_before.float()


def edit_embedding(model, before: Any, after: Any, *, embedding: str = "target_online",
                   chunk: int = ENCODE_CHUNK, progress: Progress | None = None) -> np.ndarray:
    """The world model's edit embedding of every transition: ``[N, D]`` float32 (:data:`EDIT_EMBEDDINGS`)."""
    import torch

    if embedding not in EDIT_EMBEDDINGS:
        raise ValueError(f"embedding {embedding!r}: choose one of {', '.join(EDIT_EMBEDDINGS)}")
    device = _device(model)
    model.eval()
    out = []
    with torch.inference_mode():
        for s in chunks(len(before), chunk):
            b, a = _tensor(before[s], device, tokens=True), _tensor(after[s], device, tokens=True)
            out.append(_np(edit_of(model, b, a, embedding)))
            if progress is not None:
                progress(b.shape[0])
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), dtype=np.float32)


def edit_parameter_count(model, embedding: str = "target_online") -> int:
    """Parameters the edit embedding runs through (the online encoder, and the target for ``target_online``)."""
    from wmkit.layers import count_parameters

    modules = [model.encoder] + ([model.target] if embedding == "target_online" else [])
    return sum(count_parameters(m) for m in modules)
