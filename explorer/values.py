"""What the per-token values of a trace mean, and which of them a trace has (no Streamlit).

A reducer declares the values it records (its `token_values`); analyze() writes those declarations
into the trace (meta["values"]), so that the views learn them from the trace alone. VALUES
holds the values every trace may have, whatever the reducer.

A value is either a count (an integer such as a cluster size: discrete legend) or a heat
value (a float such as attention: continuous colour bar). "cell" is an index, neither.
"""

from __future__ import annotations

import numpy as np

from .trace import Trace, ValueInfo, cells_per_token

VALUES: dict[str, ValueInfo] = {
    "cell": ValueInfo(
        "home cell",
        "The flat (t, h, w) index of the cell the token keeps as its place: where it was embedded, "
        "or for a merged token the place of the token it was merged into.",
        "index",
    ),
    "size": ValueInfo(
        "cluster size",
        "How many cells (places in the clip) the token stands for. Every token starts with one; "
        "when tokens merge, the new token stands for all their cells.",
        "count",
    ),
    "rollout": ValueInfo(
        "attention rollout",
        "How much of the model's output traces back to each cell through the attention of "
        "the blocks after this layer (heads fused, identity added for the residual path, rows renormalized, "
        "multiplied through), relative to a uniform share: 1 is an average cell, 3 is three times the average. "
        "Why sizes matter: a merged token is an average of its members, so its share flows back to them in the "
        "same proportions (by size for ToMe, equally for VTM), a pruned token passes nothing on, and the output "
        "pools tokens by size. A token standing for k cells spreads its share over them, so a big cluster is not "
        "painted k times too bright.",
        "heat",
    ),
    "attention": ValueInfo(
        "attention received",
        "How much attention the token receives from the others in the next block, per cell "
        "it stands for, relative to uniform (1 = average). There is no next block after the last layer.",
        "heat",
    ),
}


def describe(name: str, integer: bool = False, trace: Trace | None = None) -> ValueInfo:
    """What the value means: as the trace says (its reducer declared it), else the generic table's entry, else a
    generic one: unknown integers are counts, anything else is heat."""
    declared = trace.value_info(name) if trace is not None else None
    if declared is not None:
        return declared
    if name in VALUES:
        return VALUES[name]
    label = name.replace("_", " ")
    if integer:
        return ValueInfo(label, f"A whole number the reducer recorded for each token ({label}).", "count")
    return ValueInfo(
        label,
        f"A number the reducer recorded for each token ({label}); brighter cells belong to tokens with higher values.",
        "heat",
    )


def kind(trace: Trace, name: str) -> str:
    integer = np.issubdtype(trace.values[name][0].dtype, np.integer)
    return describe(name, integer, trace).kind


def heat_values(trace: Trace) -> list[str]:
    """Heat values the trace has, finite at some layer (a value that is NaN everywhere shows nothing)."""
    return [
        name
        for name, per_layer in trace.values.items()
        if kind(trace, name) == "heat" and any(np.isfinite(v).any() for v in per_layer)
    ]


def count_values(trace: Trace) -> list[str]:
    return [name for name in trace.values if kind(trace, name) == "count"]


def token_sizes(trace: Trace, layer: int) -> np.ndarray:
    """(tokens,) int: how many cells each token stands for at the layer, counted from the owner map."""
    return cells_per_token(trace.owner[layer], trace.tokens_per_layer[layer])


def shares_tokens(trace: Trace) -> bool:
    """Whether some token stands for more than one cell at some layer (a merge or an RLT run)."""
    return any(token_sizes(trace, layer).max(initial=0) > 1 for layer in range(trace.layers + 1))
