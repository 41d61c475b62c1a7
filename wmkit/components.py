"""The model component interfaces: encoder, action encoder, predictor, regularizer, auxiliary loss,
prediction cost.

Plugins subclass these and register them (see :mod:`wmkit.hookspecs`). The world model in
:mod:`wmkit.model` composes them; the training loop in :mod:`wmkit.train` never names a concrete
component. Every loss-like component returns a ``dict`` of named tensors: regularizers and
auxiliary losses put their total under ``"loss"`` (other entries are detached, for logging); the
prediction cost returns its terms unweighted, and the world model weights each one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """What an encoder returns for a batch of token sequences.

    ``z`` is the final pooled readout ``[B, D]``; ``loops`` holds the pooled readout after every
    loop (``loops[-1]`` is ``z``), so auxiliary losses and probes can read early loops.
    """

    z: torch.Tensor
    loops: list[torch.Tensor]


class Encoder(nn.Module):
    """Maps token ids ``[B, L]`` to an :class:`EncoderOutput`.

    Constructed as ``cls(vocab_size=, max_len=, pad_id=, dim=, heads=, loops=, options=)`` where
    ``options`` is the resolved ``[model.encoder]`` table (plugin options included), a mapping: read it
    through the registered options class, ``opts = MyOptions.of(options)`` (:mod:`wmkit.options`).
    """

    #: the options when registered without ``options=`` (an Options class or a ``{key: Field}`` dict)
    options: ClassVar[Any] = {}

    def __init__(self, *, vocab_size: int, max_len: int, pad_id: int, dim: int, heads: int,
                 loops: int, options: Mapping[str, Any]):
        super().__init__()
        self.dim = dim

    def forward(self, tokens: torch.Tensor) -> EncoderOutput:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ActionInputs:
    """What an action encoder may read about a batch of edits (all rows aligned).

    ``vector`` is the domain's action vector ``[B, A]`` (the paper's hand-made edit summary).
    ``before`` / ``after`` are the token ids ``[B, L]`` of both states, for encoders that read the
    edit itself (``edit_tokens`` in :attr:`wmkit.domain.Domain.action_inputs`); ``None`` when the
    caller has only vectors. ``state`` is target(before) ``[B, D]`` of the rows the action is applied
    to, for an encoder that :attr:`~ActionEncoder.reads_state`: the world model fills it in from the
    prediction's base (callers leave it ``None``), so another sample's action is embedded on this state.
    """

    vector: torch.Tensor
    before: torch.Tensor | None = None
    after: torch.Tensor | None = None
    state: torch.Tensor | None = None

    def take(self, index: torch.Tensor) -> "ActionInputs":
        """The inputs of rows ``index`` (e.g. another sample's action, for the action test)."""
        pick = (lambda t: None if t is None else t[index])
        return ActionInputs(vector=self.vector[index], before=pick(self.before), after=pick(self.after),
                            state=pick(self.state))

    def to(self, device) -> "ActionInputs":
        move = (lambda t: None if t is None else t.to(device))
        return ActionInputs(vector=self.vector.to(device), before=move(self.before), after=move(self.after),
                            state=move(self.state))

    def on(self, state: torch.Tensor) -> "ActionInputs":
        """The same edits, applied to ``state`` (target(before) of the predicted rows)."""
        return dataclasses.replace(self, state=state)


class ActionEncoder(nn.Module):
    """Maps :class:`ActionInputs` to an action embedding ``[B, D]`` for the predictor.

    Constructed as ``cls(action_dim=, vocab_size=, pad_id=, dim=, heads=, options=)`` with the
    resolved ``[model.action]`` table. ``inputs`` names the action inputs it reads; a recipe that
    picks it for a domain that does not offer them (:attr:`wmkit.domain.Domain.action_inputs`) is
    refused before anything is built.
    """

    options: ClassVar[Any] = {}
    #: action inputs read (``vector``: the action vector; ``edit_tokens``: the states' token ids)
    inputs: ClassVar[tuple[str, ...]] = ("vector",)

    def __init__(self, *, action_dim: int, vocab_size: int, pad_id: int, dim: int, heads: int,
                 options: Mapping[str, Any]):
        super().__init__()
        self.dim, self.pad_id = dim, int(pad_id)

    #: whether the embedding reads :attr:`ActionInputs.state` (target(before)); such an encoder needs
    #: predictions that start from it (``model.predictor.start = "target_before"``)
    reads_state: bool = False
    #: training pairs to fit :meth:`linear_features` on before step 1 (:mod:`wmkit.warm_start`); 0: none
    warm_start_pairs: int = 0
    #: after that closed-form fit, AdamW steps fitting :meth:`residual_parameters` to what it left; 0: none
    warm_start_steps: int = 0
    #: the learning rate of those steps
    warm_start_lr: float = 1e-3
    #: whether those steps also fit each pair's revert (after -> before, from target(after), the change
    #: negated): the same edits read the other way, twice the pairs for the nonlinear part
    warm_start_reverts: bool = False
    #: synthetic pairs per training pair those steps also fit: a block of a training state's tokens moved
    #: elsewhere (:func:`wmkit.warm_start.block_moves`), its target(after) from the initial target
    warm_start_moves: float = 0.0
    #: whether :meth:`residual_loss` reads each pair's gap: the squared distance from its target(after) to
    #: the nearest other state of the fit (another pair's before or after, its own before)
    warm_start_gaps: bool = False

    def forward(self, inputs: ActionInputs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def linear_features(self, inputs: ActionInputs) -> torch.Tensor:  # pragma: no cover - interface
        """``[B, F]`` features the embedding is linear in, for a warm start (``warm_start_pairs`` > 0)."""
        raise NotImplementedError

    def set_linear(self, weights: torch.Tensor, bias: torch.Tensor, *,
                   residual_rms: float) -> None:  # pragma: no cover - interface
        """Make the embedding ``features @ weights + bias`` (``weights`` ``[F, D]``) for a warm start;
        ``residual_rms`` is the RMS of what that fit leaves, the scale of any nonlinear part fit next."""
        raise NotImplementedError

    def order_features(self, inputs: ActionInputs) -> torch.Tensor | None:
        """``[B, F]`` features of the order of an edit that its :meth:`linear_features` cannot see, zero for
        every other edit; the embedding is linear in them with no bias (:meth:`set_order`). The warm start
        fits that map in closed form after :meth:`set_linear`, on the training pairs with a nonzero row and
        on synthetic block moves of training states at each pair's own first edit
        (:func:`wmkit.warm_start.anchored_moves`). None: no such part."""
        return None

    def set_order(self, weights: torch.Tensor) -> None:  # pragma: no cover - interface
        """Make the order part of the embedding ``order_features @ weights`` (``weights`` ``[F, D]``)."""
        raise NotImplementedError

    def residual_parameters(self) -> list[nn.Parameter]:
        """The parameters a warm start fits by gradient after :meth:`set_linear` (``warm_start_steps``);
        their part of the embedding must be 0 until then."""
        return []

    def residual_loss(self, inputs: ActionInputs, change: torch.Tensor,
                      gap: torch.Tensor | None = None) -> torch.Tensor:
        """What those gradient steps minimise for a batch whose target(after) − target(before) is
        ``change`` (``gap``: each pair's, with ``warm_start_gaps``): by default the embedding's mean
        squared error; an encoder whose nonlinear part is an average of several fits overrides it so each
        is fit on its own."""
        return torch.nn.functional.mse_loss(self(inputs), change)


class Predictor(nn.Module):
    """Predicts the next-state latent from a state latent ``[B, D]`` and an action embedding ``[B, D]``.

    Constructed as ``cls(dim=, heads=, options=)`` with the resolved ``[model.predictor]`` table.
    """

    options: ClassVar[Any] = {}

    def __init__(self, *, dim: int, heads: int, options: Mapping[str, Any]):
        super().__init__()
        self.dim = dim

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Regularizer(nn.Module):
    """A batch-statistic regularizer on embeddings ``[N, D]`` (variance, covariance, SIGReg, ...).

    Constructed as ``cls(dim=, options=)`` with the resolved ``[regularizer]`` table. ``forward``
    returns ``{"loss": total, <term>: detached value, ...}``; the recipe's ``regularizer.weight`` is
    applied by the caller. ``paired`` is a second view (the target when the regularizer is applied
    to predictions) for regularizers with an invariance term; others ignore it.
    """

    options: ClassVar[Any] = {}
    #: whether the statistic must be computed over the global batch under data parallelism
    needs_global_batch: ClassVar[bool] = True

    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__()
        self.dim = dim

    def forward(self, embeddings: torch.Tensor, paired: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


@dataclass
class AuxInputs:
    """Everything an auxiliary loss may use for one encoder loop.

    ``loop_state`` is the pooled loop-ℓ readout of the *before* state (not detached: this is the
    gradient path into early loops); ``target`` is the EMA target's embedding of the after state;
    ``predictor`` is the shared predictor, called as ``predictor(state, action_embedding)``.
    """

    loop: int
    loop_state: torch.Tensor
    final_state: torch.Tensor
    target: torch.Tensor
    action_embedding: torch.Tensor
    actions: torch.Tensor
    predictor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AuxLoss(nn.Module):
    """An auxiliary loss applied on chosen encoder loops (``loss.aux.loops``).

    Constructed as ``cls(dim=, options=)`` with the resolved ``[loss.aux]`` table; returns a dict
    with ``"loss"``. The recipe's ``loss.aux.weight`` is applied by the caller, per loop.
    """

    options: ClassVar[Any] = {}
    #: whether the loss compares rows with each other (in-batch negatives) and so must see the global
    #: batch under data parallelism; per-row losses leave it False
    needs_global_batch: ClassVar[bool] = False

    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__()
        self.dim = dim

    def forward(self, inputs: AuxInputs) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


@dataclass
class PredCostInputs:
    """What a prediction cost may use for one batch (float32, rows aligned, ``[B, D]`` unless noted).

    - ``pred``: the prediction ẑ, with gradient (into the predictor and action encoder);
    - ``target``: z̄ = target(after), without gradient;
    - ``pred_delta``: d̂ = ẑ − z_t, z_t the predictor's input state (ẑ − target(before) when the
      model's predictions start from target(before));
    - ``target_delta``: d = z̄ − z_t, or z̄ − target(before) when the cost's
      :attr:`PredCost.target_delta_origin` is ``"target_before"`` or predictions start from it;
    - ``online``: the online final readouts of the before and after states, concatenated
      (``[2B, D]``, the global batch under torchrun), with gradient into the encoder;
    - ``pred_projector`` / ``target_projector``: the model's training projectors
      (``[model.projector]``), ``None`` when disabled.
    """

    pred: torch.Tensor
    target: torch.Tensor
    pred_delta: torch.Tensor
    target_delta: torch.Tensor
    online: torch.Tensor
    pred_projector: nn.Module | None = None
    target_projector: nn.Module | None = None


class PredCost(nn.Module):
    """The prediction cost: compares the prediction with its target, as named unweighted terms.

    Constructed as ``cls(dim=, options=)`` with the resolved ``[loss.pred]`` table; chosen by
    ``loss.pred.form``. ``forward`` returns ``{term: scalar tensor}`` with one entry per name in
    :attr:`terms`; the world model weights term ``t`` by the recipe's ``loss.<t>.weight`` (a term of
    weight 0 is reported but sends no gradient). Computed in float32, outside autocast.
    """

    options: ClassVar[dict] = {}
    #: the terms ``forward`` returns, in order; each is weighted by ``loss.<term>.weight``
    terms: ClassVar[tuple[str, ...]] = ("pred", "dir", "mag", "cov")
    #: where the target displacement d starts: ``"predictor_input"`` (z_t, the reference) or
    #: ``"target_before"`` (the paper's Δz = target(after) − target(before))
    target_delta_origin: ClassVar[str] = "predictor_input"

    def __init__(self, *, dim: int, options: Mapping[str, Any]):
        super().__init__()
        self.dim = dim

    def forward(self, inputs: PredCostInputs) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError
