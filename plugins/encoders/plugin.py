"""Registration of the built-in encoders (import-light: no torch here)."""

import wmkit
from wmkit.schema import Field

#: options of the ``looped_transformer`` encoder, merged into ``[model.encoder]``
LOOPED_TRANSFORMER_OPTIONS = {
    "pool": Field(str, "attn", "readout after every loop: attn (one learned query, reference), cls, mean",
                  choices=("attn", "cls", "mean")),
    "mask_padding": Field(bool, False, "ignore PAD tokens in attention and pooling (the reference attends "
                          "them: defect D8)"),
}


@wmkit.hookimpl
def wmkit_register_encoders(register):
    register("looped_transformer", "wmkit_encoders.looped:LoopedTransformerEncoder",
             options=LOOPED_TRANSFORMER_OPTIONS,
             description="one pre-LN block looped N times with shared weights, readout after every loop "
                         "(CodeWM 2)")
