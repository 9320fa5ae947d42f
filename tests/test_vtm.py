import numpy as np
import pytest
import torch

from explorer.models.merge import match_to_targets, merge_tokens
from explorer.models.motion import cell_motion
from explorer.models.reducers.base import BlockContext
from explorer.models.reducers.vtm import VTM, VTMSaliency, in_centre
from explorer.models.video_vit import normalize_video
from tests.clips import moving_square_frames, still_frames

GRID = (8, 14, 14)
N = 8 * 14 * 14
DEPTH = 12
HEAD_DIM = 64
KINDS = ("naive", "region", "boundary", "motion", "learnable")


def square_video() -> torch.Tensor:
    return normalize_video(torch.from_numpy(moving_square_frames(row=5)))


def make(targets: str, **params) -> VTM:
    params.setdefault("motion_source", "difference")  # fast; flow is tested where it matters
    reducer = VTM(targets=targets, **params)
    reducer.prepare(square_video(), GRID, 2, 16)
    return reducer


def context(block: int, cells: torch.Tensor, keys: torch.Tensor | None = None) -> BlockContext:
    n = cells.shape[1]
    keys = torch.randn(1, n, HEAD_DIM, generator=torch.Generator().manual_seed(block)) if keys is None else keys
    return BlockContext(
        block=block, depth=DEPTH, grid=GRID, x=torch.randn(1, n, 8), keys=keys, size=torch.ones(1, n), cells=cells
    )


def shuffled_cells(seed: int = 0) -> torch.Tensor:
    return torch.randperm(N, generator=torch.Generator().manual_seed(seed))[None]


def target_cells(reducer: VTM, cells: torch.Tensor, keys: torch.Tensor | None = None) -> set[int]:
    _, values = reducer.step(context(reducer.merge_blocks(DEPTH)[0], cells, keys))
    return set(cells[values["vtm_target"] == 1].tolist())


def changed_cells() -> set[int]:
    """Cells whose pixels change: where the square is in a tubelet (t >= 1), and where it was a frame before."""
    return {t * 196 + 5 * 14 + col for t in range(1, 8) for col in (t - 1, t)}


def test_naive_takes_every_gamma_th_cell_and_merges_exactly_r_sources():
    reducer = make("naive", gamma=6, merge_fraction=0.8)
    cells = shuffled_cells()
    block = reducer.merge_blocks(DEPTH)[0]
    assert reducer.step(context(block - 1, cells)) == (None, {})
    reduction, values = reducer.step(context(block, cells))
    is_target = values["vtm_target"][0] == 1
    assert sorted(cells[0, is_target].tolist()) == list(range(0, N, 6))
    r = round(0.8 * (N - 262))
    assert reduction.mode == "mean" and reduction.keeper.shape[1] == N - r
    target_slots = reduction.new_index[0, is_target]
    assert len(set(target_slots.tolist())) == 262  # no two targets share a token
    assert int(torch.isin(reduction.new_index[0, ~is_target], target_slots).sum()) == r


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gamma, merges", [(6, 2), (4, 3), (9, 5)])
def test_token_counts_match_a_run_of_blocks(kind, gamma, merges):
    reducer = make(kind, gamma=gamma, merge_blocks=merges)
    cells, x, size = shuffled_cells(), torch.randn(1, N, 8), torch.ones(1, N)
    counts = [N]
    for block in range(DEPTH):
        ctx = context(block, cells)
        ctx.x, ctx.size = x, size
        reduction, _ = reducer.step(ctx)
        if reduction is not None:
            x, size = merge_tokens(reduction, x, size)
            cells = cells.gather(1, reduction.keeper)
        counts.append(x.shape[1])
    assert reducer.token_counts(N, GRID, DEPTH) == counts
    assert len(set(counts)) == merges + 1  # every merging block merged
    assert float(size.sum()) == N and len(set(cells[0].tolist())) == counts[-1]


def test_default_keeps_a_sensible_number_of_tokens_and_budget_knob_is_monotone():
    assert VTM().token_counts(N, GRID, DEPTH) == [N] * 5 + [523] * 4 + [175] * 4
    averages = [np.mean(VTM(merge_fraction=f).token_counts(N, GRID, DEPTH)) for f in np.linspace(0, 1, 11)]
    assert averages[0] == N and all(a > b for a, b in zip(averages, averages[1:]))


def test_region_puts_half_the_targets_in_the_centre_and_boundary_the_reverse():
    centre = in_centre(torch.arange(196), GRID).reshape(14, 14)
    assert centre.sum() == 49 and centre[3:10, 3:10].all()  # the central 7 x 7 cells of each frame
    inside = in_centre(torch.arange(N), GRID)
    for kind, share_inside in (("region", 0.5), ("boundary", 0.1)):
        chosen = torch.tensor(sorted(target_cells(make(kind, gamma=6), shuffled_cells())))
        assert len(chosen) == 262
        n_in = int(inside[chosen].sum())
        assert n_in == round(262 * share_inside)
        density_in, density_out = n_in / int(inside.sum()), (262 - n_in) / int((~inside).sum())
        ratio = density_in / density_out if kind == "region" else density_out / density_in
        assert ratio == pytest.approx(3.0, rel=0.05)
        assert len(set((chosen // 196).tolist())) == 8  # spread over every tubelet, not bunched at the start


@pytest.mark.parametrize("source", ["flow", "difference"])
def test_motion_targets_land_on_the_moving_square(source):
    moving = changed_cells()
    hits = []
    for seed in range(5):
        reducer = make("motion", motion_source=source, gamma=224, seed=seed)  # 7 targets of 1568
        chosen = target_cells(reducer, shuffled_cells(seed))
        assert len(chosen) == 7
        hits.append(len(chosen & moving) / 7)
    assert np.mean(hits) >= 0.8  # chance: 14 / 1568, under 1%


def test_motion_is_zero_on_a_still_clip_and_reported_per_token():
    still = normalize_video(torch.from_numpy(still_frames()))
    for source in ("flow", "difference"):
        assert np.abs(cell_motion(still, GRID, 2, 16, source)).max() < 0.05
    reducer = make("motion", motion_source="difference")
    cells = shuffled_cells()
    _, values = reducer.step(context(reducer.merge_blocks(DEPTH)[0], cells))
    moving = torch.tensor([c in changed_cells() for c in cells[0].tolist()])
    assert (values["motion"][0, moving] > 50).all() and (values["motion"][0, ~moving] == 0).all()


@pytest.mark.parametrize("kind", ["motion", "learnable"])
def test_drawn_targets_follow_cells_and_seed_not_sequence_order(kind):
    cells, keys = shuffled_cells(0), torch.randn(1, N, HEAD_DIM)
    chosen = target_cells(make(kind, seed=3), cells, keys)
    assert target_cells(make(kind, seed=3), cells, keys) == chosen  # repeated forwards merge the same way
    perm = torch.randperm(N)
    assert target_cells(make(kind, seed=3), cells[:, perm], keys[:, perm]) == chosen
    assert target_cells(make(kind, seed=4), cells, keys) != chosen


def test_learnable_saliency_is_the_seeded_untrained_tanh_and_a_given_u_is_used():
    reducer, cells, keys = make("learnable", seed=5), shuffled_cells(), 3 * torch.randn(1, N, HEAD_DIM)
    _, values = reducer.step(context(reducer.merge_blocks(DEPTH)[0], cells, keys))
    saliency = values["vtm_saliency"]
    assert saliency.abs().max() <= 1 and saliency.std() > 0.1
    u = VTMSaliency(DEPTH, HEAD_DIM, seed=5).u[reducer.merge_blocks(DEPTH)[0]]
    assert torch.allclose(saliency, torch.tanh(keys @ u))

    trained = VTMSaliency(DEPTH, HEAD_DIM)
    with torch.no_grad():
        trained.u.zero_()
        trained.u[:, 0] = 1.0
    keys = torch.zeros(1, N, HEAD_DIM)
    keys[0, :, 0] = torch.where(cells[0] % 2 == 0, 10.0, -10.0)  # even cells salient (S = 1), odd not (S = -1)
    given = make("learnable")
    given.saliency = trained
    chosen = target_cells(given, cells, keys)
    assert sum(c % 2 == 0 for c in chosen) / len(chosen) > 0.75  # softmax odds e^2 : 1


def test_auxiliary_path_trains_u_and_is_dropped_at_inference():
    module = VTMSaliency(depth=3, head_dim=16, seed=0).train()
    q, k, v = torch.randn(3, 1, 2, 10, 16).unbind(0)  # (B, heads, N, head_dim)
    bias = module.attention_bias(k.mean(dim=1), block=1)
    assert bias.shape == (1, 1, 1, 10)
    out = torch.softmax(q @ k.transpose(-1, -2) / 4 + bias, dim=-1) @ v
    (out * torch.randn_like(out)).sum().backward()
    assert module.u.grad[1].abs().sum() > 0 and module.u.grad[[0, 2]].abs().sum() == 0
    assert module.eval().attention_bias(k.mean(dim=1), block=1) is None

    reducer, cells, keys = make("learnable"), shuffled_cells(), torch.randn(1, N, HEAD_DIM)
    reduction, values = reducer.step(context(reducer.merge_blocks(DEPTH)[0], cells, keys))
    assert not values["vtm_saliency"].requires_grad
    plain = match_to_targets(keys, values["vtm_target"] == 1, N - reduction.keeper.shape[1], mode="mean")
    assert torch.equal(reduction.new_index, plain.new_index) and torch.equal(reduction.keeper, plain.keeper)
