"""Registration of the built-in auxiliary (deep-supervision) losses (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class NTXentOptions(Options):
    """Options of ``ntxent``, merged into ``[loss.aux]``."""

    temperature = Field(float, 0.07, "softmax temperature of the delta cosines (the reference floors it "
                        "at 0.01)", minimum=0.01)
    pos_threshold = Field(float, 0.9, "two rows are positives when their action cosine exceeds this",
                          minimum=-1.0, maximum=1.0)
    min_delta_norm = Field(float, 1e-4, "rows whose delta norm is at most this are dropped", minimum=0.0)


@wmkit.hookimpl
def wmkit_register_aux_losses(register):
    register("none", "wmkit_aux_losses.none:NoAuxLoss", options={},
             description="no auxiliary loss")
    register("pred", "wmkit_aux_losses.pred:PredAuxLoss", options={},
             description="loop-l readout through the shared predictor vs the target (CodeWM 2 recipe)")
    register("ntxent", "wmkit_aux_losses.ntxent:NTXentAuxLoss", options=NTXentOptions,
             description="supervised NT-Xent on loop-l deltas, positives by action cosine "
                         "(the reference's 'contrast')")
    register("cos_align", "wmkit_aux_losses.cos_align:CosAlignAuxLoss", options={},
             description="1 - cos(loop-l readout, target), no action")
