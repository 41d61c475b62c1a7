"""Registration of the built-in action encoders (import-light: no torch here)."""

import wmkit
from wmkit.schema import Field

#: options of the ``mlp`` action encoder, merged into ``[model.action]``
MLP_OPTIONS = {
    "hidden": Field(int, 128, "action MLP hidden width", minimum=1, maximum=1 << 16),
}

#: options of the ``edit_tokens`` action encoder, merged into ``[model.action]``
EDIT_TOKENS_OPTIONS = {
    "window": Field(int, 64, "tokens of the edit read: a delete marker and the first removed tokens in the "
                    "first half, an insert marker and the first added tokens in the second", minimum=4, maximum=4096),
    "layers": Field(int, 1, "pre-LN transformer blocks over the edit window", minimum=1, maximum=64),
    "with_vector": Field(bool, True, "add the MLP of the domain's action vector to the edit embedding"),
    "hidden": Field(int, 128, "hidden width of the action-vector MLP (with_vector)", minimum=1, maximum=1 << 16),
}


@wmkit.hookimpl
def wmkit_register_action_encoders(register):
    register("mlp", "wmkit_action_encoders.mlp:MLPActionEncoder", options=MLP_OPTIONS, inputs=("vector",),
             description="Linear(A, hidden) -> GELU -> Linear(hidden, D) over the domain's action vector "
                         "(CodeWM 2)")
    register("edit_tokens", "wmkit_action_encoders.edit_tokens:EditTokenActionEncoder",
             options=EDIT_TOKENS_OPTIONS, inputs=("vector", "edit_tokens"),
             description="a small transformer over the tokens the edit removed and added (plus the action "
                         "vector's MLP): the action says what changed, not only what kind of edit")
