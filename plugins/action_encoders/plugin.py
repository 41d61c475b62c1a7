"""Registration of the built-in action encoders (import-light: no torch here)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field


class MLPOptions(Options):
    """Options of the ``mlp`` action encoder, merged into ``[model.action]``."""

    hidden = Field(int, 128, "action MLP hidden width", minimum=1, maximum=1 << 16)


class EditTokensOptions(Options):
    """Options of the ``edit_tokens`` action encoder, merged into ``[model.action]``."""

    window = Field(int, 64, "tokens of the edit read: a delete marker and the first removed tokens in the "
                   "first half, an insert marker and the first added tokens in the second", minimum=4, maximum=4096)
    layers = Field(int, 1, "pre-LN transformer blocks over the edit window", minimum=1, maximum=64)
    with_vector = Field(bool, True, "add the MLP of the domain's action vector to the edit embedding")
    hidden = Field(int, 128, "hidden width of the action-vector MLP (with_vector)", minimum=1, maximum=1 << 16)


class TokenBagOptions(Options):
    """Options of the ``token_bag`` action encoder, merged into ``[model.action]``."""

    buckets = Field(int, 2048, "count buckets per side (removed, added): token t counts in bucket t mod buckets; "
                    "exact when the vocabulary fits", minimum=1, maximum=1 << 20)
    with_vector = EditTokensOptions.fields["with_vector"]
    hidden = EditTokensOptions.fields["hidden"]
    init = Field(str, "zero", "zero: count weights start at 0; ridge: before step 1 they are fit in closed form "
                 "(ridge, training pairs only) to the initial target's change, so the untrained model is the "
                 "linear edit baseline (needs a predictor that passes the action through: add_action, zero_init)",
                 choices=("zero", "ridge"))
    init_pairs = Field(int, 8192, "training pairs the ridge warm start is fit on (init = ridge)",
                       minimum=16, maximum=1 << 22)
    positions = Field(bool, False, "also per bucket: the sum of its tokens' positions in after minus in before "
                      "(positions / window): an edit that moves tokens without changing their counts (a "
                      "reordering, a revert of one) is not an empty bag")
    position_bins = Field(int, 0, "also per bucket and each of this many equal spans of the window: its count in "
                          "after minus in before (weighted 0.2, so the ridge fit leans on the counts and uses the "
                          "spans to say where a token's change lands); 0: off", minimum=0, maximum=512)
    order_frequencies = Field(int, 0, "an edit that leaves every bucket's count unchanged (a reordering) also adds R · "
                              "S, S per bucket the sum of its tokens' position sinusoids (this many frequencies, "
                              "periods 4 to 256 positions) in after minus in before; R is fit in closed form at the "
                              "ridge warm start on the training reorderings and 2 synthetic block moves per training "
                              "pair at its own first edit (init = ridge); 0: off", minimum=0, maximum=64)
    head = Field(str, "linear", "linear: the embedding is W · features + b; mlp: plus an MLP of target(before) and "
                 "that linear embedding (the change a token makes depends on the state it lands in), its last "
                 "layer starting at 0; needs model.predictor.start = \"target_before\"", choices=("linear", "mlp"))
    head_hidden = Field(int, 512, "hidden width of the mlp head (head = mlp)", minimum=1, maximum=1 << 16)
    head_count = Field(int, 1, "mlp heads (head = mlp), each fit by its own squared error from its own random "
                       "start, their outputs averaged: an average of fits varies less than one fit", minimum=1,
                       maximum=64)
    head_tokens = Field(int, 0, "the mlp head also reads a learned sum over the window of each token's embedding "
                        "times its position's (width head_tokens), after minus before: where each token is, which "
                        "counts and position sums only summarise; its weights are fit with the head; 0: off",
                        minimum=0, maximum=1 << 12)
    head_state_scale = Field(float, 10.0, "target(before) enters the mlp head times this (its elements are of order "
                             "1; the linear embedding enters divided by the ridge fit's residual RMS)",
                             minimum=1e-6, maximum=1e6)
    init_steps = Field(int, 0, "after the ridge fit (init = ridge), AdamW steps of batch 256 fitting the mlp head to "
                       "what ridge leaves of the initial target's change, on the same pairs (by init_error); 0: "
                       "ridge only",
                       minimum=0, maximum=1 << 20)
    init_lr = Field(float, 1e-3, "learning rate of those steps (init_steps)", minimum=1e-8, maximum=1.0)
    init_reverts = Field(bool, False, "those steps also fit each pair's revert (before and after swapped, read "
                         "from target(after), the change negated); the ridge fit stays on the pairs as given")
    init_moves = Field(float, 0.0, "those steps also fit this many synthetic pairs per training pair: its before "
                       "with a block of 2 to n/3 tokens moved elsewhere, encoded by the initial target (the same "
                       "tokens in another order, which counts alone cannot see); 0: none", minimum=0.0, maximum=64.0)
    init_error = Field(str, "absolute", "what those steps minimise: absolute, the squared error; relative, each "
                       "pair's squared error over its own squared change (plus init_error_floor), so the smallest "
                       "changes, where a prediction must move along a change of cos 0.99999 to be found, weigh as "
                       "much as the largest; gap, over the squared distance from its target(after) to the nearest "
                       "other state of the fit (its own before, another pair's before or after), what KNN@1 must "
                       "beat", choices=("absolute", "relative", "gap"))
    init_error_floor = Field(float, 0.1, "init_error = relative or gap: this share of the batch's median squared "
                             "change (or gap) is added to each pair's, so a near-zero one cannot take the whole batch",
                             minimum=1e-6, maximum=1e6)


@wmkit.hookimpl
def wmkit_register_action_encoders(register):
    register("mlp", "wmkit_action_encoders.mlp:MLPActionEncoder", options=MLPOptions, inputs=("vector",),
             description="Linear(A, hidden) -> GELU -> Linear(hidden, D) over the domain's action vector "
                         "(CodeWM 2)")
    register("edit_tokens", "wmkit_action_encoders.edit_tokens:EditTokenActionEncoder",
             options=EditTokensOptions, inputs=("vector", "edit_tokens"),
             description="a small transformer over the tokens the edit removed and added (plus the action "
                         "vector's MLP): the action says what changed, not only what kind of edit")
    register("token_bag", "wmkit_action_encoders.token_bag:TokenBagActionEncoder",
             options=TokenBagOptions, inputs=("vector", "edit_tokens"),
             description="a linear map of the counts of tokens the edit removed and added (plus the action "
                         "vector's MLP): the audit's linear edit baseline as an action embedding")
