"""The demo model: generated clips, the training script, the shipped weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.analyze import DEMO_WEIGHTS
from explorer.models.video_vit import VideoViTConfig
from explorer.models.weights import load_model
from explorer.synthetic import (
    DIRECTIONS,
    LABELS,
    SYMMETRIES,
    held_out_seeds,
    motion_batch,
    motion_clip,
    symmetric,
    training_batch,
    training_clip,
    validation_seeds,
)
from explorer.train import TrainSettings, evaluate, forward_with_saliency, save_demo, train

pytestmark = pytest.mark.slow

TINY = VideoViTConfig(embed_dim=32, depth=2, num_heads=2, num_classes=len(LABELS), num_frames=16, img_size=112)
MAX_BYTES = 20 * 2**20


def _moving_mask(clip: np.ndarray) -> np.ndarray:
    return (np.abs(clip[1:].astype(int) - clip[:-1]).sum(-1) > 0).any(0)


def _assert_motion_matches(clip: np.ndarray, label: int) -> None:
    """A still clip changes nowhere; a moving one's changes travel the labelled way."""
    moving = _moving_mask(clip)
    if LABELS[label] == "still":
        assert not moving.any()
        return
    assert moving.any()
    dx, dy = DIRECTIONS[label]
    # compare where the first two and the last two frames differ
    first = np.argwhere(np.abs(clip[1].astype(int) - clip[0]).sum(-1) > 0).mean(0)
    last = np.argwhere(np.abs(clip[-1].astype(int) - clip[-2]).sum(-1) > 0).mean(0)
    assert np.sign(last[1] - first[1]) == np.sign(dx) or dx == 0
    assert np.sign(last[0] - first[0]) == np.sign(dy) or dy == 0


def test_clips_are_deterministic_and_need_motion():
    a, label_a = motion_clip(7)
    b, label_b = motion_clip(7)
    assert np.array_equal(a, b) and label_a == label_b
    assert a.shape == (16, 112, 112, 3) and a.dtype == np.uint8
    for seed in range(40):
        _assert_motion_matches(*motion_clip(seed))


def test_every_symmetry_relabels_the_clip_to_its_motion():
    clips, labels = motion_batch(list(range(30)))
    assert set(labels.tolist()) == set(range(len(LABELS)))
    for which in range(SYMMETRIES):
        images, relabelled = symmetric(clips, labels, torch.full((len(labels),), which))
        assert images.shape == clips.shape
        for clip, label in zip(images.numpy(), relabelled.tolist()):
            _assert_motion_matches(clip, label)
    assert torch.equal(symmetric(clips, labels, torch.zeros(len(labels), dtype=torch.long))[0], clips)


def _assert_cells_move(cells: np.ndarray, label: int) -> None:
    """The moving shape's cells: none when still, else their centre travels the labelled way."""
    if LABELS[label] == "still":
        assert not cells.any()
        return
    dx, dy = DIRECTIONS[label]
    first, last = np.argwhere(cells[0]).mean(0), np.argwhere(cells[-1]).mean(0)
    assert (last - first)[1] * dx + (last - first)[0] * dy > 0


def test_training_clips_are_deterministic_varied_and_their_cells_follow_the_motion():
    a, label_a, cells_a = training_clip(11)
    b, label_b, cells_b = training_clip(11)
    assert np.array_equal(a, b) and label_a == label_b and np.array_equal(cells_a, cells_b)
    assert a.shape == (16, 112, 112, 3) and a.dtype == np.uint8 and cells_a.shape == (16, 7, 7)
    clips, labels, cells = training_batch(list(range(40)))
    assert set(labels.tolist()) == set(range(len(LABELS)))
    for label, cell in zip(labels.tolist(), cells.numpy()):
        _assert_cells_move(cell, label)
    # still clips may still change pixels (light, sensor noise, the codec): "still" means nothing moves
    still = [clip for clip, label in zip(clips.numpy(), labels.tolist()) if label == 0]
    assert any((clip[1:] != clip[:-1]).any() for clip in still)
    for which in range(SYMMETRIES):  # the cells turn with the clip
        moved, relabelled = symmetric(cells[..., None], labels, torch.full((len(labels),), which))
        for cell, label in zip(moved[..., 0].numpy(), relabelled.tolist()):
            _assert_cells_move(cell, label)


def test_held_out_seeds_are_never_drawn_in_training():
    from explorer.train import pool_seeds

    for seed in (0, 3, 99):
        pool = set(pool_seeds(TrainSettings(seed=seed)))
        assert not pool & set(held_out_seeds(500)) and not pool & set(validation_seeds(500))
    with pytest.raises(ValueError, match="held-out"):
        pool_seeds(TrainSettings(seed=100))


def test_short_run_lowers_the_loss_and_writes_loadable_weights(tmp_path):
    settings = TrainSettings(
        steps=150, batch=8, lr=1e-2, warmup=0.1, saliency_steps=3, eval_clips=8, train_clips=8, seed=1
    )
    model, saliency, result = train(settings, cfg=TINY, log=lambda _: None)
    assert np.mean(result.losses[-10:]) < 0.9 * np.mean(result.losses[:10])
    assert len(result.saliency_losses) == 3
    path = save_demo(model, saliency, result, tmp_path / "demo.safetensors")
    loaded, report = load_model(path)
    assert report.labels == list(LABELS) and report.format == "explorer" and not report.missing
    assert report.training["settings"]["steps"] == 150 and report.training["held_out_accuracy"] == result.accuracy
    assert torch.equal(loaded.vtm_saliency.u, saliency.u)
    video = torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        assert torch.allclose(loaded(video), model(video), atol=1e-5)
    assert evaluate(loaded, held_out_seeds(8)) == result.accuracy


def test_saliency_path_trains_u_and_is_dropped_at_inference():
    torch.manual_seed(0)
    from explorer.models.reducers.vtm import VTMSaliency
    from explorer.models.video_vit import VideoViT

    model = VideoViT(TINY).eval()
    saliency = VTMSaliency(TINY.depth, TINY.embed_dim // TINY.num_heads).eval()
    video = torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        assert torch.equal(forward_with_saliency(model, video, saliency), model(video))
    saliency.train()
    forward_with_saliency(model, video, saliency).sum().backward()
    assert saliency.u.grad is not None and saliency.u.grad.abs().sum() > 0


def test_shipped_demo_model_reaches_its_stated_accuracy():
    assert DEMO_WEIGHTS.exists(), "assets/demo_model.safetensors is missing: python -m explorer train"
    assert DEMO_WEIGHTS.stat().st_size <= MAX_BYTES
    model, report = load_model(DEMO_WEIGHTS)
    assert report.labels == list(LABELS) and model.vtm_saliency is not None
    stated, clips = report.training["held_out_accuracy"], report.training["held_out_clips"]
    assert stated >= 0.95  # the project's bar for the demo model (chance: 20%)
    # the same fixed held-out clips the training run measured, so the same figure
    assert abs(evaluate(model, held_out_seeds(clips)) - stated) <= 0.01


def test_train_cli_refuses_bad_settings(capsys):
    from explorer.cli import main

    assert main(["train", "--steps", "0", "--out", "unused.safetensors"]) == 2
    assert capsys.readouterr().err.startswith("error: --steps")
    assert main(["train", "--clips", "100000", "--out", "unused.safetensors"]) == 2
    assert "at most 10000" in capsys.readouterr().err
    assert main(["train", "--seed", "100", "--out", "unused.safetensors"]) == 2
    assert "held-out" in capsys.readouterr().err


def test_first_batch_gives_the_first_generators_clips_with_the_cells_that_change():
    from explorer.synthetic import first_batch, motion_batch

    seeds = list(range(20))
    clips, labels, cells = first_batch(seeds)
    same_clips, same_labels = motion_batch(seeds)
    assert torch.equal(clips, same_clips) and torch.equal(labels, same_labels)
    assert cells.shape == (20, 16, 7, 7)
    moving = labels > 0
    assert not cells[~moving].any() and all(cells[i].any() for i in torch.nonzero(moving).flatten().tolist())
    changed = (clips[:, 1:] != clips[:, :-1]).any(-1)  # every changed pixel lies in a marked cell
    marked = cells[:, 1:].repeat_interleave(16, 2).repeat_interleave(16, 3)
    assert not (changed & ~marked).any()


def test_a_run_goes_on_from_saved_weights_and_keeps_their_record(tmp_path):
    from explorer.models.reducers import ParameterError

    first = TrainSettings(steps=3, batch=4, saliency_steps=1, eval_clips=5, validation_clips=5, train_clips=8)
    model, saliency, result = train(replace(first, generator="first"), cfg=TINY, log=lambda _: None)
    start = save_demo(model, saliency, result, tmp_path / "first.safetensors")
    then = replace(first, lr=1e-8, init=str(start), seed=2)
    going_on, _, result = train(then, cfg=TINY, log=lambda _: None)
    for (name, before), after in zip(model.state_dict().items(), going_on.state_dict().values()):
        assert torch.allclose(before, after, atol=1e-4), name  # a step at lr 1e-8 leaves the weights it started from
    record = result.record()
    assert record["init_training"]["settings"]["generator"] == "first" and record["settings"]["seed"] == 2
    assert record["training_generator"] == "explorer.synthetic.training_clip"
    with pytest.raises(ParameterError, match="config differs"):
        train(then, log=lambda _: None)  # the demo's config, from TINY weights
