"""The checkpoint under test as an :class:`~wmkit.bench.baselines.EditEmbedder` (step 2 of the protocol)."""

from __future__ import annotations

import numpy as np

from wmkit.bench.baselines import EditEmbedder, EditPairs, LatencyItem
from wmkit.encode import EDIT_EMBEDDINGS as EMBEDDINGS
from wmkit.encode import edit_embedding, edit_of, edit_parameter_count
from wmkit.errors import RecipeError

#: pairs per forward pass when wmkit embeds the benchmark set
WMKIT_CHUNK = 64


class WmkitEmbedder(EditEmbedder):
    """A checkpoint's edit embedding: ``target(after) − online(before)`` or ``online − online``.

    Reads the domain's own tokens (``[N, L]``, every state padded to ``L`` = ``data.max_len``);
    the encoders run at that full length whatever the real token count.
    """

    kind = "wmkit"

    def __init__(self, model, *, embedding: str = "target_online", vocab_size: int, pad_id: int,
                 sequence_length: int, name: str = "wmkit", chunk: int = WMKIT_CHUNK):
        if embedding not in EMBEDDINGS:
            raise RecipeError(f"--embedding {embedding}: choose one of {', '.join(EMBEDDINGS)}")
        self.name = name
        self.model = model.eval()
        self.embedding = embedding
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.max_tokens = int(sequence_length)
        self.chunk = chunk

    def _edit(self, before, after):
        return edit_of(self.model, before, after, self.embedding)

    def parameter_count(self) -> int:
        return edit_parameter_count(self.model, self.embedding)

    def embed(self, pairs: EditPairs, *, progress=None) -> np.ndarray:
        return edit_embedding(self.model, pairs.before_tokens, pairs.after_tokens, embedding=self.embedding,
                              chunk=self.chunk, progress=progress or None)

    def identical_inputs(self, pairs: EditPairs) -> np.ndarray:
        return np.all(np.asarray(pairs.before_tokens) == np.asarray(pairs.after_tokens), axis=1)

    def latency_items(self, pairs: EditPairs) -> list[LatencyItem]:
        import torch

        items = []
        for i in range(len(pairs)):
            b, a = pairs.before_tokens[i:i + 1], pairs.after_tokens[i:i + 1]
            items.append(LatencyItem(payload=(torch.from_numpy(np.asarray(b)).long(), torch.from_numpy(np.asarray(a)).long()),
                                     tokens=(int((b != self.pad_id).sum()), int((a != self.pad_id).sum()))))
        return items

    def full_length_items(self, count: int, seed: int = 0) -> list[LatencyItem]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        items = []
        for _ in range(count):
            sides = []
            for _side in range(2):
                ids = torch.randint(0, self.vocab_size - 1, (1, self.max_tokens), generator=gen)
                ids = torch.where(ids >= self.pad_id, ids + 1, ids)  # any token but PAD
                sides.append(ids)
            items.append(LatencyItem(payload=tuple(sides), tokens=(self.max_tokens, self.max_tokens)))
        return items

    def run_item(self, item: LatencyItem) -> None:
        import torch

        with torch.inference_mode():
            self._edit(*item.payload)

    def describe(self) -> dict:
        return {"kind": self.kind, "embedding": self.embedding, "formula": EMBEDDINGS[self.embedding],
                "sequence_length": self.max_tokens, "max_tokens": self.max_tokens,
                "note": "every state is padded to sequence_length; the encoders always run at that length"}
