"""Data-parallel training under torchrun: process group, the global batch, and a gather with gradients.

Described in full in docs/scale.md#one-machine-many-gpus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from wmkit.errors import RecipeError


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job (``size == 1``: not distributed)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(environ=None) -> World:
    """The world torchrun describes in ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` (absent: one process)."""
    environ = os.environ if environ is None else environ
    try:
        size = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise RecipeError("WORLD_SIZE / RANK / LOCAL_RANK must be integers (torchrun sets them); unset them "
                          "to train in one process") from None
    return World(rank=rank, local_rank=local, size=max(size, 1))


def local_batch_size(batch_size: int, world: World) -> int:
    """``optim.batch_size`` (global) split over the ranks; refuses a world size that does not divide it."""
    if batch_size % world.size:
        raise RecipeError(f"optim.batch_size = {batch_size} is the global batch and must be divisible by the "
                          f"world size {world.size} (torchrun --nproc_per_node x nodes); set --set "
                          f"optim.batch_size={(batch_size // world.size + 1) * world.size} or change the process count")
    return batch_size // world.size


def start(world: World, device_name: str):
    """Join the process group and return this rank's torch device (``cuda:LOCAL_RANK`` or cpu)."""
    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return device


def stop() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def agree_on_checkpoint(resume_from):
    """Rank 0's checkpoint to resume from, on every rank (a ``checkpoints/step-N`` path or ``None``):
    every rank must start from the same step even if the directory changed between their reads."""
    import torch
    import torch.distributed as dist

    from wmkit.errors import RunError

    step = torch.tensor([-1 if resume_from is None else int(Path(resume_from).name.split("-")[-1])])
    dist.broadcast(step, src=0)
    if int(step) < 0:
        return None
    if resume_from is None:
        raise RunError(f"rank 0 resumes from step {int(step)} but this rank sees no checkpoint; the run "
                       f"directory must be on storage every rank shares")
    return Path(resume_from).parent / f"step-{int(step)}"


def rank0_decides(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank: a decision only rank 0 can make (it alone runs the probe),
    such as stopping early, so that every rank leaves the loop at the same step."""
    if active_world_size() <= 1:
        return flag
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def active_world_size() -> int:
    """The process group's size, 1 when there is none (a single-process run, a test, an audit)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather_function():
    import torch
    import torch.distributed as dist

    class _GatherWithGradient(torch.autograd.Function):
        """all_gather forward; backward: all-reduce (sum) the gradient of the gathered tensor, keep our slice."""

        @staticmethod
        def forward(ctx, x):
            parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, x.contiguous())
            ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
            return torch.cat(parts, dim=0)

        @staticmethod
        def backward(ctx, grad):
            grad = grad.contiguous()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]

    return _GatherWithGradient


_GATHER = None


def gather_batch(x):
    """Rows of ``x`` from every rank, in rank order (``x`` itself in a single process).

    With gradient when ``x`` requires it (see the module docstring for why the backward sums);
    every rank must pass the same number of rows.
    """
    global _GATHER
    if active_world_size() == 1:
        return x
    import torch
    import torch.distributed as dist

    if not x.requires_grad:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)
    if _GATHER is None:
        _GATHER = _gather_function()
    return _GATHER.apply(x)


def mean_over_ranks(values: dict) -> dict:
    """Average detached scalar tensors over ranks (for logging the global batch's loss terms)."""
    if active_world_size() == 1 or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    stacked /= dist.get_world_size()
    return {k: stacked[i] for i, k in enumerate(keys)}


def global_batch_norm(module):
    """Make every ``BatchNorm1d`` in ``module`` normalise with the global batch's statistics.

    ``torch.nn.SyncBatchNorm`` does this on GPUs only; this works on any backend (gloo on CPU). The
    module keeps its parameters and buffers (same state-dict keys), only its class changes.
    """
    from torch import nn

    cls = _global_batch_norm_class()
    for sub in module.modules():
        if type(sub) is nn.BatchNorm1d:
            sub.__class__ = cls
    return module


_GBN = None


def _global_batch_norm_class():
    global _GBN
    if _GBN is not None:
        return _GBN
    import torch
    from torch import nn

    class GlobalBatchNorm1d(nn.BatchNorm1d):
        """BatchNorm1d whose training-mode statistics are those of the rows of every rank."""

        def forward(self, x):
            if not self.training or active_world_size() == 1:
                return super().forward(x)
            full = gather_batch(x)
            mean = full.mean(dim=0)
            var = full.var(dim=0, unbiased=False)
            if self.track_running_stats:
                with torch.no_grad():
                    n = full.shape[0]
                    self.num_batches_tracked.add_(1)
                    m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                    self.running_var.mul_(1 - m).add_(var.detach() * n / max(n - 1, 1), alpha=m)
            out = (x - mean) / torch.sqrt(var + self.eps)
            if self.affine:
                out = out * self.weight + self.bias
            return out

    _GBN = GlobalBatchNorm1d
    return _GBN
