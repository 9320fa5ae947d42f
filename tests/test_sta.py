import pytest
import torch

from explorer.models.reducers.base import BlockContext
from explorer.models.reducers.sta import STA, stage_blocks

GRID = (8, 14, 14)


def context(
    block: int,
    keys: torch.Tensor,
    x: torch.Tensor | None = None,
    grid=GRID,
    depth: int = 12,
    cells: torch.Tensor | None = None,
) -> BlockContext:
    B, N, _ = keys.shape
    if cells is None:
        cells = torch.arange(N).expand(B, -1)
    if x is None:
        x = torch.ones(B, N, 8)
    return BlockContext(block=block, depth=depth, grid=grid, x=x, keys=keys, size=torch.ones(B, N), cells=cells)


def run_all_blocks(sta: STA, grid, depth: int, batch: int = 2, seed: int = 0) -> list[int]:
    """Random tokens through every block, applying each reduction; returns the token count after each layer."""
    gen = torch.Generator().manual_seed(seed)
    N = grid[0] * grid[1] * grid[2]
    cells = torch.arange(N).expand(batch, -1)
    counts = [N]
    for block in range(depth):
        n = cells.shape[1]
        ctx = context(
            block, torch.randn(batch, n, 16, generator=gen), torch.randn(batch, n, 8, generator=gen), grid, depth, cells
        )
        reduction, values = sta.step(ctx)
        if reduction is None:
            assert values == {}
        else:
            new_index, keeper = reduction.new_index, reduction.keeper
            M = keeper.shape[1]
            assert values["sta_score"].shape == (batch, n)
            assert torch.equal(keeper, torch.sort(keeper, dim=1).values)  # original order kept
            for b in range(batch):
                kept = (new_index[b] >= 0).nonzero()[:, 0]
                assert torch.equal(kept, keeper[b])
                assert torch.equal(new_index[b, kept], torch.arange(M))
            cells = cells.gather(1, keeper)
        counts.append(cells.shape[1])
    return counts


def test_token_counts_match_the_paper_for_16_frames_of_224_px():
    counts = STA().token_counts(1568, GRID, 12)
    assert counts == [1568] + [1056] * 4 + [800] * 4 + [672] * 4


def test_stages_sit_after_blocks_0_third_and_two_thirds():
    assert stage_blocks(12) == {0: 0, 4: 1, 8: 2}
    assert stage_blocks(24) == {0: 0, 8: 1, 16: 2}
    assert stage_blocks(2) == {0: 0, 1: 2}  # depth // 3 == 0 clashes with stage 0; the earlier stage wins


@pytest.mark.parametrize(
    "grid, depth, expected_ends",
    [
        ((8, 14, 14), 24, [1568, 1056, 800, 672]),
        ((8, 14, 14), 2, [1568, 1056, 928]),  # stage 2 (4 slots a group) after block 1: 2 groups of 528 drop 64
        ((4, 7, 7), 12, [196, 132, 100, 84]),  # r = 16 on 7 x 7; groups: 4 of 49, 2 of 66, 1 of 100
    ],
)
def test_token_counts_on_other_grids_and_depths(grid, depth, expected_ends):
    counts = STA().token_counts(grid[0] * grid[1] * grid[2], grid, depth)
    assert len(counts) == depth + 1
    distinct = [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]]
    assert distinct == expected_ends


@pytest.mark.parametrize(
    "grid, depth, r",
    [
        ((8, 14, 14), 12, 64),
        ((4, 7, 7), 12, 64),
        ((5, 4, 6), 12, 90),
        ((8, 14, 14), 2, 30),
        ((3, 2, 2), 24, 98),
    ],
)
def test_step_keeps_as_many_tokens_as_token_counts_says(grid, depth, r):
    sta = STA(r=r)
    N = grid[0] * grid[1] * grid[2]
    assert run_all_blocks(sta, grid, depth) == sta.token_counts(N, grid, depth)


def test_each_temporal_group_drops_r_tokens():
    sta = STA()
    keys = torch.randn(1, 1568, 16, generator=torch.Generator().manual_seed(1))
    reduction, _ = sta.step(context(0, keys))
    kept_slots = (reduction.keeper[0] // 196).bincount(minlength=8)
    assert kept_slots.tolist() == [132] * 8


def static_and_changing_keys(grid, static: int, seed: int = 0) -> torch.Tensor:
    """Orthonormal keys; the first `static` places repeat one key in every slot, all other tokens are new."""
    T, H, W = grid
    basis = torch.linalg.qr(torch.randn(T * H * W, T * H * W, generator=torch.Generator().manual_seed(seed)))[0]
    keys = basis.reshape(T, H * W, -1).clone()
    keys[:, :static] = keys[0, :static]
    return keys.reshape(1, T * H * W, -1)


def kept_grid(reduction, grid) -> torch.Tensor:
    T, H, W = grid
    kept = torch.zeros(T * H * W, dtype=torch.bool)
    kept[reduction.keeper[0]] = True
    return kept.view(T, H * W)


def test_a_token_repeating_a_kept_one_is_pruned_before_new_tokens():
    """Redundancy is measured against what was kept just before: 8 static places, 4 dropped per slot."""
    grid = (8, 4, 4)
    sta = STA(r=49)
    assert sta.drop_per_group(16) == 4
    reduction, values = sta.step(context(0, static_and_changing_keys(grid, static=8), grid=grid))
    kept = kept_grid(reduction, grid)
    assert kept[1:, 8:].all()  # after the first slot, every changing token stays
    for t in range(1, 8):
        dropped = (~kept[t]).nonzero()[:, 0]
        assert kept[t - 1, dropped].all()  # each dropped token repeats one kept in the slot before
        score = values["sta_score"][0].view(8, 16)[t]
        assert score[dropped].min() > score[8:].max()


def test_redundancy_keeps_growing_along_a_static_region():
    """Temporal accumulation: the longer a place has stayed the same, the more redundancy its token carries
    (it saturates fast: the softmax over plain cosine similarities is flat)."""
    grid = (8, 4, 4)
    _, values = STA(r=0).step(context(0, static_and_changing_keys(grid, static=4), grid=grid))
    score = values["sta_score"][0].view(8, 16)[1:]
    static = score[:, :4].mean(dim=1)
    assert (static[1:] >= static[:-1] - 1e-6).all() and static[-1] > static[0] + 1e-3
    assert (score[:, :4].amin(dim=1) > score[:, 4:].amax(dim=1)).all()


def test_a_strongly_activated_token_survives_among_equally_redundant_ones():
    grid = (4, 4, 4)
    keys = static_and_changing_keys(grid, static=16)  # everything static: redundancy alone cannot choose
    x = torch.ones(1, 64, 8)
    loud = torch.tensor([16 + 3, 32 + 5, 48 + 9])  # one token per later slot
    x[0, loud] = 10.0
    x[0, 16:] += torch.linspace(0, 0.1, 48)[:, None]  # small, distinct activations elsewhere
    reduction, _ = STA(r=98).step(context(0, keys, x, grid))  # drops 8 of 16 per slot
    kept = set(reduction.keeper[0].tolist())
    assert set(loud.tolist()) <= kept


def test_middle_stage_walks_backwards_in_time():
    """At stage 1 the last group is visited first: it drops by within-group similarity, whatever the activation."""
    grid = (4, 2, 2)
    keys = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(3))
    x = torch.ones(1, 16, 8)
    _, values = STA(r=49).step(context(4, keys, x, grid))
    score, metric = values["sta_score"][0], torch.nn.functional.normalize(keys[0], dim=-1)
    last = metric[8:]  # slots 2 and 3: the last group of two slots
    best = (last[::2] @ last[1::2].T).amax(dim=-1)
    assert torch.allclose(score[8:][::2], best)


def test_same_input_same_pruning_and_clips_are_independent():
    gen = torch.Generator().manual_seed(7)
    keys, x = torch.randn(3, 1568, 16, generator=gen), torch.randn(3, 1568, 8, generator=gen)
    first, v1 = STA().step(context(0, keys, x))
    second, v2 = STA().step(context(0, keys.clone(), x.clone()))
    alone, _ = STA().step(context(0, keys[1:2], x[1:2]))
    assert torch.equal(first.new_index, second.new_index) and torch.equal(v1["sta_score"], v2["sta_score"])
    assert torch.equal(first.new_index[1:2], alone.new_index)
    assert not torch.equal(first.new_index[0], first.new_index[1])  # the choice depends on content


def test_no_pruning_off_the_stage_blocks():
    keys = torch.randn(1, 1568, 16)
    assert STA().step(context(1, keys)) == (None, {})


def test_budget_knob_moves_the_average_token_count_monotonically():
    assert STA.budget_knob in {p.name for p in STA.params} and "budget" in {p.name for p in STA.params}
    means = [sum(STA(r=r).token_counts(1568, GRID, 12)) / 13 for r in range(0, 99, 7)]
    assert all(a > b for a, b in zip(means, means[1:]))
