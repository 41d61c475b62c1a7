"""Registration of the built-in encoders (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class LoopedEncoderOptions(Options):
    """Options of the ``looped_transformer`` encoder, merged into ``[model.encoder]``."""

    pool = Field(str, "attn", "readout after every loop: attn (one learned query, reference), cls, mean",
                 choices=("attn", "cls", "mean"))
    mask_padding = Field(bool, False, "ignore PAD tokens in attention and pooling (the reference attends "
                         "them: defect D8)")
    attention_dropout = Field(float, -1.0, "dropout on attention weights; -1 = model.dropout (the reference). "
                              "0 lets CPU attention skip materialising the attention matrix: at batch 128 x "
                              "512 tokens a step is ~3x faster and needs ~3x less memory",
                              minimum=-1.0, maximum=1.0)


@wmkit.hookimpl
def wmkit_register_encoders(register):
    register("looped_transformer", "wmkit_encoders.looped:LoopedTransformerEncoder",
             options=LoopedEncoderOptions,
             description="one pre-LN block looped N times with shared weights, readout after every loop "
                         "(CodeWM 2)")
