"""Malformed checkpoints, built here (the held-out ones stay held out): every one ends in a one-line
CheckpointError naming the field and the value, before anything is allocated, or loads correctly."""

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import VideoMAEForVideoClassification

from explorer.analyze import analyze
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, VideoViTConfig
from explorer.models.weights import CheckpointError, download_videomae, load_model, save_weights
from tests.clips import make_clip
from tests.test_weights import tiny_config

SMALL = VideoViTConfig(embed_dim=32, depth=1, num_heads=2, num_classes=3, num_frames=4, img_size=32, patch=8)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    VideoMAEForVideoClassification(tiny_config()).save_pretrained(folder)
    return folder


def with_config(hf_folder: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    os.link(hf_folder / "model.safetensors", folder / "model.safetensors")
    config = json.loads((hf_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config)))
    return folder


def setting(key, value):
    return lambda config: config | {key: value}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (setting("hidden_size", "64"), "hidden_size must be a whole number, got '64'"),
        (setting("layer_norm_eps", "1e-12"), "layer_norm_eps must be a number, got '1e-12'"),
        (setting("id2label", ["a", "b", "c"]), "id2label must map class numbers to names"),
        (setting("id2label", {"0": {"name": "a"}}), "id2label must map class numbers to names"),
        (lambda config: [config], "the config is a JSON list"),
        (lambda config: "videomae", "the config is a JSON str"),
        (setting("num_attention_heads", 0), "num_heads must be between 1 and 1024, got 0"),
        (setting("patch_size", 0), "patch must be between 1 and 512, got 0"),
        (setting("tubelet_size", 0), "tubelet must be between 1 and 64, got 0"),
        (setting("num_hidden_layers", -3), "depth must be between 1 and 256, got -3"),
        (setting("image_size", []), "image_size must be a number or a list of equal numbers, got []"),
        (setting("hidden_size", 10**7), "embed_dim must be between 1 and 16384, got 10000000"),
        (setting("num_hidden_layers", 10**5), "depth must be between 1 and 256, got 100000"),
        (setting("image_size", 10**9), "img_size must be between 1 and 4096, got 1000000000"),
        (setting("num_attention_heads", 3), "3 heads do not divide the width 64"),
        (setting("qkv_bias", "yes"), "qkv_bias must be true or false"),
        (setting("use_mean_pooling", 1), "use_mean_pooling must be true or false"),
    ],
)
def test_a_bad_hugging_face_config_is_named(hf_folder, tmp_path, change, message):
    with pytest.raises(CheckpointError, match=None) as refused:
        load_model(with_config(hf_folder, tmp_path, change))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_config_that_never_ends_or_blocks_is_not_read(hf_folder, tmp_path):
    folder = with_config(hf_folder, tmp_path, lambda config: config)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="is not a regular file"):
        load_model(folder)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")  # opening it would wait for a writer forever
    with pytest.raises(CheckpointError, match="is a FIFO"):
        load_model(folder)
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(" " * (2 << 20))
    with pytest.raises(CheckpointError, match="larger than 1024 kB"):
        load_model(folder)


def test_a_weights_file_that_is_a_fifo_or_a_folder_is_named(tmp_path):
    os.mkfifo(tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="is a FIFO"):
        load_model(tmp_path / "model.pth")


def explorer_file(tmp_path: Path, config=None, labels=None) -> Path:
    path = tmp_path / "model.safetensors"
    save_weights(VideoViT(SMALL), path, labels=["a", "b", "c"])
    with safe_open(path, "pt") as f:
        state, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    if config is not None:
        meta["explorer_config"] = json.dumps(config)
    if labels is not None:
        meta["labels"] = json.dumps(labels)
    save_file(state, path, metadata=meta)
    return path


@pytest.mark.parametrize(
    ("config", "labels", "message"),
    [
        ([1, 2], None, "bad explorer metadata (explorer_config is a JSON list"),
        (SMALL.to_dict() | {"embed_dim": "32"}, None, "embed_dim must be a whole number, got '32'"),
        (SMALL.to_dict() | {"num_heads": 0}, None, "num_heads must be between 1 and 1024, got 0"),
        (SMALL.to_dict() | {"depth": -1}, None, "depth must be between 1 and 256, got -1"),
        (SMALL.to_dict() | {"norm_eps": "small"}, None, "norm_eps must be a number"),
        (SMALL.to_dict() | {"num_classes": 10**9}, None, "num_classes must be between 0 and 1000000"),
        (SMALL.to_dict() | {"fc_norm": "yes"}, None, "fc_norm must be true or false"),
        (SMALL.to_dict() | {"pooling": "max"}, None, "pooling must be one of mean, first, got 'max'"),
        (SMALL.to_dict() | {"embed_dim": 16384, "depth": 256, "num_heads": 16}, None, "more than half the"),
        (None, {"0": "a"}, "the labels must be a list of names, got a dict"),
        (None, ["a", "b"], "2 labels for 3 classes"),
    ],
)
def test_bad_explorer_metadata_is_named(tmp_path, config, labels, message):
    with pytest.raises(CheckpointError) as refused:
        load_model(explorer_file(tmp_path, config, labels))
    assert message in str(refused.value)


def test_a_tensor_with_an_empty_axis_is_named(tmp_path):
    state = {k: v for k, v in VideoViT(SMALL).state_dict().items()}
    state["patch_embed.proj.weight"] = torch.zeros(0, 3, 2, 8, 8)
    torch.save({"model": state}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="embed_dim must be between 1 and 16384, got 0"):
        load_model(tmp_path / "empty.pth", num_heads=2)


def rlt_state(length: torch.Tensor | None) -> dict:
    """An official-layout RLT checkpoint: VideoMAE keys, and its learned length embedding as a (1, T', D) parameter."""
    torch.manual_seed(0)
    state = dict(VideoViT(SMALL).state_dict())
    if length is not None:
        state["length_embed"] = length
    return state


def test_an_rlt_checkpoints_length_embedding_is_loaded_and_used(tmp_path):
    length = torch.randn(1, 2, 32)  # T' = 2 for 4 frames
    torch.save({"model": rlt_state(length)}, tmp_path / "rlt.pth")
    model, report = load_model(tmp_path / "rlt.pth", num_heads=2)
    assert report.config.length_embed and "length_embed" not in report.unexpected
    assert torch.equal(model.length_embed.weight, length[0])
    model.resize_input(4, 32)
    still = make_clip(np.full((4, 32, 32, 3), 128, dtype=np.uint8))  # every run is 2 tubelets long
    trace = analyze(still, model, make_reducer("rlt"), device="cpu", saliency=None)
    assert trace.values["run_length"][0].max() == 2
    assert "no learned length embedding" not in " ".join(trace.meta["notes"])
    torch.save({"model": rlt_state(None)}, tmp_path / "plain.pth")
    plain, _ = load_model(tmp_path / "plain.pth", num_heads=2)
    plain.resize_input(4, 32)
    without = analyze(still, plain, make_reducer("rlt"), device="cpu", saliency=None)
    assert "no learned length embedding" in " ".join(without.meta["notes"])
    assert not np.allclose(trace.logits, without.logits), "the length embedding changes the output"
    torch.save({"model": rlt_state(torch.zeros(1, 2, 32))}, tmp_path / "zero.pth")
    zero, _ = load_model(tmp_path / "zero.pth", num_heads=2)
    zero.resize_input(4, 32)
    same = analyze(still, zero, make_reducer("rlt"), device="cpu", saliency=None)
    assert np.allclose(same.logits, without.logits, atol=1e-6), "a zero embedding is the only difference"


def lightning_checkpoint(path: Path, class_path: str) -> None:
    """A Lightning-style .ckpt: the weights under state_dict with a model. prefix, hyper-parameters in a dict
    subclass from a module that is not installed here."""
    module_name, class_name = class_path.rsplit(".", 1)
    made = []
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
            made.append(name)
    holder = type(class_name, (dict,), {"__module__": module_name})
    setattr(sys.modules[module_name], class_name, holder)
    try:
        state = {f"model.{k}": v for k, v in VideoViT(SMALL).state_dict().items()}
        torch.save({"state_dict": state, "hyper_parameters": holder(lr=1e-3), "epoch": 3}, path)
    finally:
        for name in made:
            del sys.modules[name]


def test_a_lightning_checkpoint_loads_and_an_unknown_class_in_one_is_refused(tmp_path):
    lightning_checkpoint(tmp_path / "rlt.ckpt", "pytorch_lightning.utilities.parsing.AttributeDict")
    model, report = load_model(tmp_path / "rlt.ckpt", num_heads=2)
    assert report.format == "videomae" and not report.missing and not report.unexpected
    lightning_checkpoint(tmp_path / "other.ckpt", "some_library.settings.Settings")
    with pytest.raises(CheckpointError, match="would run code when loaded .*some_library.settings.Settings"):
        load_model(tmp_path / "other.ckpt", num_heads=2)


def test_download_takes_pytorch_model_bin_when_there_is_no_safetensors(tmp_path, monkeypatch):
    import huggingface_hub

    asked = {}

    def snapshot(repo_id, local_dir, allow_patterns):
        asked["patterns"] = allow_patterns
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "pytorch_model.bin"):
            (Path(local_dir) / name).write_text("x")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo: ["config.json", "pytorch_model.bin"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    assert download_videomae("org/model", tmp_path / "w") == tmp_path / "w"
    assert asked["patterns"] == ["config.json", "pytorch_model.bin"]
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo: ["config.json", "README.md"])
    with pytest.raises(CheckpointError, match="neither .safetensors weights nor a pytorch_model.bin"):
        download_videomae("org/model", tmp_path / "v")
