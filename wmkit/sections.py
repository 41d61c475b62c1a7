"""The core recipe sections, one typed declaration each (:mod:`wmkit.options`), and the schema they make.

The key choosing each component kind, and the component's own options, are added at the kind's
section from :data:`wmkit.kinds.KINDS`. :mod:`wmkit.recipe` loads, merges and validates recipes
against :data:`CORE_SCHEMA`; this module only declares what a recipe may hold.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

from wmkit import kinds
from wmkit.errors import RecipeError
from wmkit.options import Options
from wmkit.schema import Field

# ---------------------------------------------------------------------------------------------
# The core sections, one typed declaration each (wmkit.options). The key choosing each component
# kind, and the component's own options, are added at the kind's section (wmkit.kinds).
# ---------------------------------------------------------------------------------------------

#: device strings a recipe may name; whether one is present is checked when training starts
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


class MetaOptions(Options):
    name = Field(str, "unnamed", "recipe name, used in run-directory names")
    description = Field(str, "", "one line shown by `wmkit recipes`")
    extends = Field(str, "", "a shipped recipe name or path whose values this recipe starts from")
    seed = Field(int, 42, "seeds python, numpy and torch before anything is built", minimum=0, maximum=2**32 - 1)


class DataOptions(Options):
    source = Field(str, "default", "jsonl:PATH, parquet:PATH, hf:ID[/CONFIG][@REV], git:PATH[@REV], or "
                   "'default' for the domain's embedded default")
    max_len = Field(int, 512, "tokens per state (longer states are truncated)", minimum=4, maximum=1 << 20)
    window = Field(str, "head", "which max_len tokens to keep: the first ones (reference) or a "
                   "window centred on the first edited token", choices=("head", "edit"))
    max_chars = Field(int, 40000, "drop rows whose before or after text is longer (reference)", minimum=1)
    min_changed_tokens = Field(int, 5, "drop rows whose diff has fewer changed words (reference)", minimum=0)
    val_percent = Field(int, 10, "share of rows (by commit hash) held out when the data has no split "
                        "column", minimum=1, maximum=90)
    limit = Field(int, 0, "keep at most this many rows (0 = all)", minimum=0)
    holdout_repos = Field(list, [], "repositories (the repos column) held out whole: neither trained on nor "
                          "probed; audit them with wmkit audit --split holdout", item=str)
    keep_unchanged = Field(bool, False, "keep pairs whose token sequences are identical after the cut to "
                           "max_len (comment- or docstring-only edits, edits beyond the window); "
                           "by default they are dropped as no_token_change")


class EncoderOptions(Options):
    loops = Field(int, 3, "encoder loops (readouts)", minimum=1, maximum=64)


class PredictorOptions(Options):
    input_loop = Field(int, 0, "0: the predictor reads the final readout; k: loop k's readout "
                       "(the early-loop readout variant)", minimum=0)
    start = Field(str, "none", "what a prediction starts from: none (ẑ = P(z, a), the reference) or "
                  "target_before (ẑ = target(before) + g·P(z, a) with a learned gain g that starts at 0: "
                  "the copy baseline is where training begins)", choices=("none", "target_before"))


class ActionOptions(Options):
    pass


class ProjectorOptions(Options):
    enabled = Field(bool, True, "train-time projectors inside the pred loss (reference default)")
    hidden = Field(int, 256, "projector hidden width", minimum=1, maximum=1 << 16)


class TargetOptions(Options):
    ema_decay = Field(float, 0.99999, "EMA decay of the target encoder", minimum=0.0, maximum=1.0)


class ModelOptions(Options):
    dim = Field(int, 128, "latent width D", minimum=1, maximum=1 << 16)
    heads = Field(int, 4, "attention heads", minimum=1, maximum=1024)
    mlp_ratio = Field(int, 4, "MLP width = dim * mlp_ratio", minimum=1, maximum=64)
    dropout = Field(float, 0.1, "dropout in blocks and after positions", minimum=0.0, maximum=1.0)
    encoder = EncoderOptions
    predictor = PredictorOptions
    action = ActionOptions
    projector = ProjectorOptions
    target = TargetOptions

    def check(self, path: str = "model.") -> None:
        loops, input_loop = self.encoder.loops, self.predictor.input_loop
        if not 0 <= input_loop <= loops:
            raise RecipeError(f"{path}predictor.input_loop: {input_loop} is outside 0..{loops} "
                              f"(0 = final readout, k = loop k of {path}encoder.loops)")
        if self.dim % self.heads:
            raise RecipeError(f"{path}heads: {self.heads} does not divide {path}dim = {self.dim}")


class PredLossOptions(Options):
    weight = Field(float, 1.0, "weight of the prediction loss")
    # loss.pred.form is the pred_cost kind's key (wmkit.kinds), placed after weight below


class DirLossOptions(Options):
    weight = Field(float, 0.5, "weight of 1 - cos(pred delta, target delta)")


class MagLossOptions(Options):
    weight = Field(float, 0.1, "weight of the log delta-norm mismatch")


class CovLossOptions(Options):
    weight = Field(float, 0.01, "weight of the off-diagonal covariance of online readouts")


class AuxLossOptions(Options):
    loops = Field(list, [], "1-based encoder loops that get the auxiliary loss", item=int)
    weight = Field(float, 0.3, "weight per loop")


class LossOptions(Options):
    pred = PredLossOptions
    dir = DirLossOptions
    mag = MagLossOptions
    cov = CovLossOptions
    aux = AuxLossOptions


class RegularizerOptions(Options):
    weight = Field(float, 0.1, "weight of the regularizer loss")
    apply_to = Field(str, "encoder", "encoder readout, predictor output, or both",
                     choices=("encoder", "predictor", "both"))


class OptimOptions(Options):
    lr = Field(float, 3e-4, "peak AdamW learning rate", minimum=0.0)
    weight_decay = Field(float, 0.01, "AdamW weight decay", minimum=0.0)
    batch_size = Field(int, 128, "pairs per step", minimum=2, maximum=1 << 20)
    warmup_steps = Field(int, 200, "linear warm-up from min_lr_ratio*lr", minimum=0)
    min_lr_ratio = Field(float, 0.01, "warm-up start and cosine floor, as a fraction of lr", minimum=0.0)
    grad_clip = Field(float, 1.0, "gradient-norm clip (0 = off)", minimum=0.0)


class TrainOptions(Options):
    steps = Field(int, 2000, "total optimisation steps (the schedule's length)", minimum=1)
    eval_every = Field(int, 100, "steps between validation probes", minimum=1)
    save_every = Field(int, 500, "steps between checkpoints", minimum=1)
    keep_checkpoints = Field(int, 0, "keep only the newest N step checkpoints besides best (0 = all)", minimum=0)
    device = Field(str, "auto", "auto, cpu, cuda, cuda:N")
    precision = Field(str, "auto", "auto (bf16 autocast on CUDA, fp32 on CPU), fp32, bf16 (autocast on any device)",
                      choices=("auto", "fp32", "bf16"))
    threads = Field(int, 0, "torch CPU threads (0 = torch's default)", minimum=0, maximum=4096)
    select = Field(str, "knn1_over_copy", "the probe criterion that picks the best checkpoint and drives "
                   "train.patience (never delta cos or lift): knn1_over_copy = prediction KNN@1 minus copy's "
                   "KNN@1, knn_at_1, knn_at_5, beats_copy; a warm-started model (model.action.init = ridge) is probed "
                   "at step 0 and kept as step-0, so it can be the best",
                   choices=("knn1_over_copy", "knn_at_1", "knn_at_5", "beats_copy"))
    patience = Field(int, 0, "stop after this many probes in a row without a new best train.select value "
                     "(0 = never stop early)", minimum=0, maximum=1 << 20)
    target_refresh_every = Field(int, 0, "reuse each training row's EMA-target readouts for up to this many "
                                 "steps instead of encoding them every step (0 = off, the paper: every step); "
                                 "a resumed run restarts the cache", minimum=0, maximum=1 << 30)

    def check(self, path: str = "train.") -> None:
        if not DEVICE_PATTERN.match(self.device):
            raise RecipeError(f"{path}device: {self.device!r} is not a device torch offers; use auto, cpu, cuda, "
                              f"cuda:N or mps")


class EvalOptions(Options):
    probe_size = Field(int, 1024, "validation pairs in the fixed probe gallery that train.select is measured "
                       "on (0 = every validation pair); a run with fewer validation pairs is refused",
                       minimum=0, maximum=1 << 20)
    batch_size = Field(int, 128, "probe pairs encoded at once", minimum=1, maximum=1 << 20)
    final_audit = Field(bool, False, "wmkit train ends by auditing the best checkpoint on the full validation "
                        "split and printing its verdict beside copy, the linear edit model and random")


class RecipeOptions(Options):
    """A whole recipe, typed: ``RecipeOptions.of(values).optim.lr``. Component options that join a
    section (``model.encoder.pool``) and the chosen names (``model.encoder.name``) are its extras."""

    meta = MetaOptions
    data = DataOptions
    model = ModelOptions
    loss = LossOptions
    regularizer = RegularizerOptions
    optim = OptimOptions
    train = TrainOptions
    eval = EvalOptions

    def check(self, path: str = "") -> None:
        self.train.check()
        need, have = memory_lower_bound(self), _physical_memory()
        if have and need > have:
            raise RecipeError(f"model.dim={self.model.dim}, data.max_len={self.data.max_len}, "
                              f"optim.batch_size={self.optim.batch_size}: training needs at least "
                              f"{need / 2**30:.1f} GiB (weights, gradients, AdamW state, one activation per token) "
                              f"but this machine has {have / 2**30:.1f} GiB; lower them")
        self.check_model()

    def check_model(self) -> None:
        """The checks of what the model is built from (also run by :func:`wmkit.model.build_world_model`:
        a recorded recipe is not refused for the machine it is loaded on)."""
        loops = self.model.encoder.loops
        for k in self.loss.aux.loops:
            if not 1 <= k <= loops:
                raise RecipeError(f"loss.aux.loops: loop {k} is outside 1..{loops} (model.encoder.loops)")
        self.model.check()


#: the core schema: the typed sections as ``{key: Field | {…}}``, plus the component keys (below)
CORE_SCHEMA: dict = RecipeOptions.schema()
CORE_SCHEMA["loss"]["pred"]["form"] = None  # the pred_cost kind's key keeps its place after weight


def _add_component_keys(schema: dict) -> None:
    """One key per component kind, at the kind's section (from :data:`wmkit.kinds.KINDS`)."""
    for kind in kinds.KINDS:
        *parents, last = kind.section.split(".")
        node = schema
        for part in parents:
            node = node.setdefault(part, {})
        if kind.many:
            always = f"; always on: {', '.join(kind.always)}" if kind.always else ""
            field = Field(list, [], f"{kind.label} plugins (`wmkit plugins`): {kind.summary}{always}; options in "
                          f"[{kind.options_section}.NAME]", item=str)
        else:
            field = Field(str, kind.default, f"{kind.label} plugin (`wmkit plugins`): {kind.summary}")
        section = node.get(last, {})
        if section.get(kind.key, ...) is None:  # the section placed the key: keep that order
            node[last] = {k: field if k == kind.key else v for k, v in section.items()}
        else:
            node[last] = {kind.key: field, **section}  # the chosen name comes first


_add_component_keys(CORE_SCHEMA)

#: renamed recipe keys still accepted: old dotted key -> new dotted key
DEPRECATED_KEYS = {"loss.aux.type": "loss.aux.name"}


def memory_lower_bound(values: Mapping) -> int:
    """Bytes a training run needs at least: encoder and predictor attention + MLP weights with their
    gradients and two AdamW moments (4 x fp32), plus one fp32 activation per token and dimension for
    both sides of the batch. Real use is several times higher; this bound only refuses the impossible."""
    o = RecipeOptions.of(values)
    dim, ratio = o.model.dim, o.model.mlp_ratio
    params = 2 * (4 + 2 * ratio) * dim * dim
    activations = 2 * o.optim.batch_size * o.data.max_len * dim
    return 4 * (4 * params + activations)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
