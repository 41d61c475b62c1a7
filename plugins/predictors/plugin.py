"""Registration of the built-in predictors (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class LoopedPredictorOptions(Options):
    """Options of the ``looped_transformer`` predictor, merged into ``[model.predictor]``."""

    blocks = Field(int, 2, "distinct pre-LN blocks, applied one after another", minimum=1)
    loops = Field(int, 6, "times each block is applied (shared weights)", minimum=1)
    residual = Field(bool, False, "predict z_t + output instead of the output (the residual-predictor "
                     "negative result)")
    output = Field(str, "norm", "norm: LayerNorm of the state token (reference); update: what the blocks added "
                   "to the state token, not normalised, so its size can follow the size of an edit (for "
                   "predictions of a change: model.predictor.start = target_before)", choices=("norm", "update"))
    add_action = Field(bool, False, "add the action embedding to the output: a direct path from the action to "
                       "the prediction beside the blocks' (with a linear action encoder such as token_bag, the "
                       "model holds the linear edit baseline as a special case)")
    zero_init = Field(bool, False, "the blocks' residual branches (attention output and second MLP layer) start "
                      "at 0, so at step 0 the update is 0 and the prediction is what the action alone says")


@wmkit.hookimpl
def wmkit_register_predictors(register):
    register("looped_transformer", "wmkit_predictors.looped:LoopedTransformerPredictor",
             options=LoopedPredictorOptions,
             description="[state, action] tokens through looped pre-LN blocks, LayerNorm of the state token "
                         "(CodeWM 2)")
