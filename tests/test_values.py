import numpy as np

from explorer import values
from explorer.trace import Trace


def trace_with(extra: dict[str, list[np.ndarray]], owner: np.ndarray | None = None) -> Trace:
    """Two layers over a (1, 2, 2) grid; by default every cell is its own token."""
    owner = np.stack([np.arange(4, dtype=np.int32).reshape(1, 2, 2)] * 2) if owner is None else owner
    tokens = [int(o.max()) + 1 for o in owner]
    return Trace(
        grid=(1, 2, 2),
        cell=(2, 16, 16),
        owner=owner,
        tokens_per_layer=tokens,
        values={"cell": [np.arange(n) for n in tokens], **extra},
        flops=np.ones(2),
        dense_flops=np.ones(2),
        seconds={},
    )


def test_heat_values_are_floats_that_are_finite_somewhere_and_counts_are_integers_but_not_the_cell():
    trace = trace_with(
        {
            "attention": [np.array([1.0, 2.0, np.nan, 0.5]), np.full(4, np.nan)],
            "motion": [np.full(4, np.nan), np.full(4, np.nan)],  # never measured: nothing to draw
            "my_score": [np.ones(4), np.zeros(4)],
            "size": [np.ones(4, dtype=int)] * 2,
            "run_length": [np.ones(4, dtype=int)] * 2,
            "my_count": [np.ones(4, dtype=int)] * 2,
        }
    )
    assert values.heat_values(trace) == ["attention", "my_score"]
    assert values.count_values(trace) == ["size", "run_length", "my_count"]


def test_every_value_has_a_label_and_an_explanation_unknown_ones_a_generic_one():
    for name, info in values.VALUES.items():
        assert info.label and info.explanation.endswith(".") and info.kind in ("count", "heat", "index"), name
    assert values.describe("rollout").kind == "heat" and "uniform" in values.describe("rollout").explanation
    unknown = values.describe("edge_energy")
    assert (unknown.label, unknown.kind) == ("edge energy", "heat") and "edge energy" in unknown.explanation
    assert values.describe("hops", integer=True).kind == "count"


def test_token_sizes_count_cells_and_shares_tokens_notices_a_merge():
    assert not values.shares_tokens(trace_with({}))
    merged = np.stack([np.arange(4, dtype=np.int32).reshape(1, 2, 2), np.array([[[0, 0], [-1, 1]]], dtype=np.int32)])
    trace = trace_with({}, merged)
    assert values.token_sizes(trace, 1).tolist() == [2, 1]
    assert values.shares_tokens(trace)


def test_a_value_is_described_as_its_trace_says_before_the_generic_table():
    trace = trace_with({"evit_attention": [np.ones(4), np.ones(4)]})
    assert values.describe("evit_attention", trace=trace).label == "evit attention"  # nothing declared: generic
    trace.meta["values"] = {"evit_attention": {"label": "EViT attention", "explanation": "Declared.", "kind": "heat"}}
    assert values.describe("evit_attention", trace=trace).label == "EViT attention"
    trace.meta["values"]["evit_attention"]["kind"] = "count"
    assert values.kind(trace, "evit_attention") == "count"  # the declaration, not the float dtype, decides
