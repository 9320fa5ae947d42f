import numpy as np
import pytest
import torch

from explorer.models.reducers import ParameterError, make_reducer
from explorer.models.reducers.rlt import rlt_mask, run_lengths, tubelet_distances
from explorer.models.video_vit import normalize_video
from tests.clips import moving_square_frames, still_frames

GRID = (8, 14, 14)


def select(frames: np.ndarray, name: str = "rlt", **params):
    video = normalize_video(torch.from_numpy(frames))
    return make_reducer(name, **params).select(video, GRID, 2, 16)


def reference_lengths(kept: np.ndarray) -> np.ndarray:
    """Brute force: walk forward from each kept cell to the next kept one at the same place."""
    lengths = np.zeros(kept.shape, dtype=int)
    for t, h, w in zip(*np.nonzero(kept)):
        nxt = t + 1
        while nxt < kept.shape[0] and not kept[nxt, h, w]:
            nxt += 1
        lengths[t, h, w] = nxt - t
    return lengths


def test_still_clip_keeps_only_the_first_tubelet():
    sel = select(still_frames())
    assert sel.keep.tolist() == list(range(196))
    assert sel.values["run_length"].tolist() == [8] * 196
    # every later cell is covered by the token at its own place in tubelet 0
    for t in range(8):
        assert (sel.owner[t] == np.arange(196).reshape(14, 14)).all()


def test_moving_square_keeps_exactly_the_cells_it_crosses():
    sel = select(moving_square_frames(row=5))
    kept = np.zeros(GRID, dtype=bool)
    kept.reshape(-1)[sel.keep] = True
    expected = np.zeros(GRID, dtype=bool)
    expected[0] = True
    for j in range(1, 8):  # frame 2j+1 has the square at column j, frame 2j-2 at column j-1
        expected[j, 5, j] = expected[j, 5, j - 1] = True
    assert (kept == expected).all()
    assert sel.keep.size == 196 + 14


def test_run_lengths_are_paired_with_their_own_tokens():
    sel = select(moving_square_frames(row=5))
    kept = np.zeros(GRID, dtype=bool)
    kept.reshape(-1)[sel.keep] = True
    ref = reference_lengths(kept)
    assert (sel.values["run_length"] == ref.reshape(-1)[sel.keep]).all()
    # by hand: column 3 of row 5 is kept at tubelets 0, 3 (square arrives) and 4 (square leaves)
    at = {t: sel.values["run_length"][np.searchsorted(sel.keep, t * 196 + 5 * 14 + 3)] for t in (0, 3, 4)}
    assert at == {0: 3, 3: 1, 4: 4}
    # what the model gets (lengths) is each token's own run, in (t, h, w) token order; the known public-code bug
    # paired the tokens with the lengths read in (h, w, t) order, which differs here
    assert sel.lengths.tolist() == ref.reshape(-1)[sel.keep].tolist()
    transposed = ref.transpose(1, 2, 0).reshape(-1)[kept.transpose(1, 2, 0).reshape(-1)]
    assert sel.lengths.tolist() != transposed.tolist()


def test_run_lengths_match_brute_force_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(20):
        kept = rng.random(GRID) < 0.3
        kept[0] = True
        assert (run_lengths(kept) == reference_lengths(kept)).all()


def test_pruned_cells_belong_to_the_kept_token_whose_run_covers_them():
    sel = select(moving_square_frames(row=5))
    t, h, w = 6, 5, 2  # kept at tubelets 0, 2, 3; tubelets 4.. are covered by the token of tubelet 3
    token = sel.owner[t, h, w]
    assert sel.keep[token] == 3 * 196 + h * 14 + w
    assert (sel.owner >= 0).all()


def test_tau_is_a_strict_threshold_in_normalized_units():
    frames = still_frames()
    frames[3:, :16, :16] = np.clip(frames[3:, :16, :16].astype(int) + 20, 0, 255)  # from frame 3 on
    video = normalize_video(torch.from_numpy(frames))
    d = tubelet_distances(video, 2, 16)
    step = d[0, 0, 0]  # tubelet 1: frame 3 against frame 0; tubelet 2: frame 5 against frame 2
    assert step > 0.2 and d[1, 0, 0] == step and np.count_nonzero(d) == 2
    assert rlt_mask(d, float(step))[1, 0, 0] == False  # noqa: E712  equal is not above
    assert rlt_mask(d, float(np.nextafter(step, 0)))[1, 0, 0] == True  # noqa: E712
    # the mean is over the 3 channels, each divided by its own std
    raw = np.abs(frames[3, :16, :16].astype(float) - frames[0, :16, :16]) / 255.0
    assert step == pytest.approx((raw / np.array([0.229, 0.224, 0.225])).mean(), rel=1e-5)


def test_the_comparison_is_last_frame_against_previous_first_frame():
    frames = still_frames()
    frames[4, :16, :16] = 0  # frame 4 is the first frame of tubelet 2: only compared by tubelet 3 (frame 7 vs 4)
    sel = select(frames)
    assert sel.keep.tolist() == list(range(196)) + [3 * 196]
    for unread in (1, 14):  # the last frame of tubelet 0 and the first of the last tubelet: no pair reads them
        frames = still_frames()
        frames[unread, :16, :16] = 0
        assert select(frames).keep.size == 196, unread
    frames = still_frames()
    frames[6, :16, :16] = 0  # the first frame of tubelet 3: tubelet 4 compares its last frame, 9, with it
    assert select(frames).keep.tolist() == list(range(196)) + [4 * 196]


def test_random_drop_matches_rlt_count_and_is_seeded():
    frames = moving_square_frames()
    rlt = select(frames)
    a = select(frames, "random", seed=3)
    b = select(frames, "random", seed=3)
    c = select(frames, "random", seed=4)
    assert a.keep.size == rlt.keep.size
    assert (a.keep == b.keep).all() and not (a.keep == c.keep).all()
    assert (a.owner < 0).sum() == 1568 - a.keep.size  # dropped cells have no token
    half = select(frames, "random", match_rlt=False, keep_ratio=0.5)
    assert half.keep.size == 784


@pytest.mark.parametrize(
    "params, message",
    [
        ({"tau": -1}, "tau must be between"),
        ({"tau": "abc"}, "tau must be a finite number"),
        ({"tua": 0.1}, "unknown parameter 'tua'"),
    ],
)
def test_bad_parameters_are_refused_with_a_message(params, message):
    with pytest.raises(ParameterError, match=message):
        make_reducer("rlt", **params)


def test_unknown_reducer_is_refused():
    with pytest.raises(ParameterError, match="unknown reducer"):
        make_reducer("nope")
