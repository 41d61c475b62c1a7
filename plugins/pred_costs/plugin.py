"""Registration of the built-in prediction costs, one per ``loss.pred.form`` (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class InfoNCEOptions(Options):
    """Options of the ``infonce`` prediction cost, merged into ``[loss.pred]``."""

    temperature = Field(float, 0.002, "softmax temperature of cos(prediction, each target in the batch)",
                        minimum=1e-6, maximum=10.0)


@wmkit.hookimpl
def wmkit_register_pred_costs(register):
    register("projector_mse", "wmkit_pred_costs.projector_mse:ProjectorMSECost", options={},
             description="(2 - 2cos)/D between normalised projections of prediction and target "
                         "(model.projector; the reference's default)")
    register("cosine", "wmkit_pred_costs.cosine:CosineCost", options={},
             description="1 - cos(prediction, target) on the raw embeddings (the paper)")
    register("delta_mse", "wmkit_pred_costs.delta_mse:DeltaMSECost", options={},
             description="MSE(predicted delta, target(after) - target(before)): direct delta prediction")
    register("delta_cosine", "wmkit_pred_costs.delta_cosine:DeltaCosineCost", options={},
             description="1 - cos(predicted delta, target(after) - target(before)): the normalised delta loss")
    register("infonce", "wmkit_pred_costs.infonce:InfoNCECost", options=InfoNCEOptions,
             description="cross-entropy of picking its own target(after) among the batch's by cos / temperature "
                         "(KNN@1 as a loss)")
