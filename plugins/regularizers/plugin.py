"""Registration of the built-in regularizers (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class VICRegOptions(Options):
    """Options of ``vicreg``, merged into ``[regularizer]``."""

    variance_weight = Field(float, 1.0, "weight of mean_d relu(1 - std_d)", minimum=0.0)
    covariance_weight = Field(float, 0.04, "weight of sum_{i!=j} C_ij^2 / D (the reference's 1 : 0.04)",
                              minimum=0.0)
    invariance_weight = Field(float, 0.0, "weight of MSE(embeddings, paired view); 0 as the reference "
                              "(L_pred plays that role); used only when a paired view exists", minimum=0.0)
    eps = Field(float, 0.0, "std = sqrt(var + eps); 0 as the reference, VICReg's paper uses 1e-4",
                minimum=0.0)


class SIGRegOptions(Options):
    """Options of ``sigreg``, merged into ``[regularizer]``."""

    directions = Field(int, 128, "random unit directions drawn afresh every call", minimum=1)
    exact_up_to = Field(int, 512, "use all N^2 pairs for the pairwise term up to this many rows", minimum=2)
    sampled_pairs = Field(int, 2048, "random pairs per direction above exact_up_to", minimum=1)


@wmkit.hookimpl
def wmkit_register_regularizers(register):
    register("none", "wmkit_regularizers.none:NoRegularizer", options={},
             description="no static regularizer (zero loss)")
    register("vicreg", "wmkit_regularizers.vicreg:VICReg", options=VICRegOptions,
             description="variance hinge + off-diagonal covariance (reference form, no invariance by default)")
    register("sigreg", "wmkit_regularizers.sigreg:SIGReg", options=SIGRegOptions,
             description="Epps-Pulley-style Gaussianity statistic on random 1-D projections")
