"""Malformed checkpoints, built here (the held-out ones stay held out): every one ends in a one-line
CheckpointError naming the field and the value, before anything is allocated, or loads correctly."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import VideoMAEForPreTraining, VideoMAEForVideoClassification

import explorer.models.weights as weights
from explorer.analyze import analyze
from explorer.models.reducers import make_reducer
from explorer.models.video_vit import VideoViT, VideoViTConfig, normalize_video, sincos_table
from explorer.models.weights import (
    CheckpointError,
    download_videomae,
    load_decoder,
    load_model,
    native_img_size,
    save_weights,
)
from tests.clips import GREY, make_clip
from tests.test_weights import tiny_config

SMALL = VideoViTConfig(embed_dim=32, depth=1, num_heads=2, num_classes=3, num_frames=4, img_size=32, patch=8)


def refused(path: Path, loader=load_model, **options) -> str:
    """The message a load of `path` ends in: one line, naming the file (or the file in the folder)."""
    with pytest.raises(CheckpointError) as error:
        loader(path, **options)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


# --- Hugging Face config.json ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    VideoMAEForVideoClassification(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_pretrain_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf_pretrain")
    VideoMAEForPreTraining(tiny_config(use_mean_pooling=False)).save_pretrained(folder)
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
        (setting("layer_norm_eps", float("inf")), "layer_norm_eps must be between 1e-12 and 1.0, got inf"),
        (setting("id2label", ["a", "b", "c"]), "id2label must map class numbers to names, got ['a', 'b', 'c']"),
        (setting("id2label", {"0": {"name": "a"}}), "id2label must map class numbers to names"),
        (setting("id2label", {"first": "a"}), "id2label must map class numbers to names, got {'first': 'a'}"),
        (lambda config: [config], "the config is a JSON list, not an object of settings"),
        (lambda config: "videomae", "the config is a JSON str, not an object of settings"),
        (lambda config: 42, "the config is a JSON int, not an object of settings"),
        (setting("model_type", "vit"), "another architecture (model_type 'vit', not 'videomae')"),
        (setting("num_attention_heads", 0), "num_attention_heads must be between 1 and 1024, got 0"),
        (setting("patch_size", 0), "patch_size must be between 1 and 512, got 0"),
        (setting("tubelet_size", 0), "tubelet_size must be between 1 and 64, got 0"),
        (setting("num_hidden_layers", -3), "num_hidden_layers must be between 1 and 256, got -3"),
        (setting("image_size", []), "image_size must be a number or a list of equal numbers, got []"),
        (setting("image_size", [32, 16]), "image_size must be a number or a list of equal numbers, got [32, 16]"),
        (setting("hidden_size", 10**7), "hidden_size must be between 1 and 16384, got 10000000"),
        (setting("num_hidden_layers", 10**5), "num_hidden_layers must be between 1 and 256, got 100000"),
        (setting("image_size", 10**9), "image_size must be between 1 and 4096, got 1000000000"),
        (setting("intermediate_size", 10**400), "intermediate_size must be between 1 and 4096, got 1000"),
        (setting("num_attention_heads", 3), "3 heads do not divide the width 64"),
        (setting("num_frames", 5), "the tubelet (2) does not tile num_frames 5"),
        (setting("image_size", 36), "the patch (8) does not tile img_size 36"),
        (setting("qkv_bias", "yes"), "qkv_bias must be true or false, got 'yes'"),
        (setting("qv_bias", None), "qv_bias must be true or false, got None"),
        (setting("use_mean_pooling", 1), "use_mean_pooling must be true or false, got 1"),
        (setting("hidden_act", "relu"), "hidden_act 'relu' is not supported (the blocks use 'gelu')"),
        (lambda config: {k: v for k, v in config.items() if k != "patch_size"}, "no patch_size in the config"),
    ],
)
def test_a_bad_hugging_face_config_is_named(hf_folder, tmp_path, change, message):
    folder = with_config(hf_folder, tmp_path, change)
    said = refused(folder)
    assert said.startswith(f"{folder / 'config.json'}: ") and message in said


def test_a_config_asking_for_more_memory_than_the_machine_has_is_refused_with_the_numbers(
    hf_folder, tmp_path, monkeypatch
):
    """1024 x 1024 patches of 1 px in 2 time slots: a position table of 2,097,152 x 64 numbers, 134,285,504 in
    all (blocks 66,944); twice that in float32 is 1.0 GiB, more than half of 1 GiB."""
    monkeypatch.setattr(weights, "_memory_available", lambda: 1 << 30)
    folder = with_config(hf_folder, tmp_path, lambda c: c | {"image_size": 1024, "patch_size": 1})
    message = refused(folder)
    assert message.endswith(
        "config.json: the config asks for a network of about 134,285,504 parameters (1.0 GiB while loading), "
        "more than half the 1.0 GiB free here"
    )


def test_the_position_table_is_built_in_slices_within_its_own_memory():
    """A table passing the memory check must not need more while it is built: at once, in float64, it took 8x."""
    positions, dim = 40_000, 64  # 3 slices of 16,384 rows
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    channel = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(channel, 2, rounding_mode="floor") / dim)
    assert torch.equal(sincos_table(positions, dim), torch.where(channel % 2 == 0, angle.sin(), angle.cos()).float())
    code = (
        "import resource; from explorer.models.video_vit import sincos_table; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; table = sincos_table(200_000, 500); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    rise_kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert rise_kb < 0.6e6, f"a 0.4 GB table raised the peak by {rise_kb / 1e6:.1f} GB"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (setting("decoder_num_attention_heads", "2"), "decoder_num_attention_heads must be a whole number, got '2'"),
        (setting("decoder_num_attention_heads", 0), "decoder_num_attention_heads must be between 1 and 1024, got 0"),
        (setting("decoder_num_attention_heads", 3), "3 heads do not divide the width 32"),
        (setting("norm_pix_loss", "true"), "norm_pix_loss must be true or false, got 'true'"),
    ],
)
def test_a_bad_decoder_setting_is_named(hf_pretrain_folder, tmp_path, change, message):
    folder = with_config(hf_pretrain_folder, tmp_path, change)
    assert refused(folder, load_decoder) == f"{folder / 'config.json'}: {message}"


def test_a_config_that_never_ends_or_blocks_is_not_read(hf_folder, tmp_path):
    folder = with_config(hf_folder, tmp_path, lambda config: config)
    config = folder / "config.json"
    config.unlink()
    config.symlink_to("/dev/zero")
    assert "config.json is not a regular file: give a file" in refused(folder)
    config.unlink()
    os.mkfifo(config)  # opening it would wait for a writer forever
    assert "config.json is a FIFO: give a file" in refused(folder)
    config.unlink()
    config.mkdir()
    assert "config.json is a folder: give a file" in refused(folder)
    config.rmdir()
    config.write_text(" " * (2 << 20))
    assert "config.json is larger than 1024 kB: not a config" in refused(folder)


def test_a_weights_file_that_is_a_fifo_a_device_or_a_folder_is_named(hf_folder, tmp_path):
    os.mkfifo(tmp_path / "model.pth")
    assert "model.pth is a FIFO: give a file" in refused(tmp_path / "model.pth")
    (tmp_path / "zero.pth").symlink_to("/dev/zero")
    assert "zero.pth is not a regular file: give a file" in refused(tmp_path / "zero.pth")
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((hf_folder / "config.json").read_text())
    (folder / "model.safetensors").mkdir()
    assert "model.safetensors is a folder: give a file" in refused(folder)


# --- explorer safetensors metadata ----------------------------------------------------------


def explorer_file(tmp_path: Path, **changes) -> Path:
    """A saved explorer file whose metadata entries are replaced by `changes` (each written as JSON)."""
    path = tmp_path / "model.safetensors"
    save_weights(VideoViT(SMALL), path, labels=["a", "b", "c"], training=TRAINING)
    with safe_open(path, "pt") as f:
        state, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    save_file(state, path, metadata=meta | {key: json.dumps(value) for key, value in changes.items()})
    return path


TRAINING = {
    "settings": {"steps": 10},
    "train_seconds": 6.0,
    "device": "cpu",
    "held_out_accuracy": 0.5,
    "held_out_clips": 8,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"explorer_config": [1, 2]}, "bad explorer metadata (explorer_config is a JSON list, not an object)"),
        ({"explorer_config": 7}, "bad explorer metadata (explorer_config is a JSON int, not an object)"),
        ({"explorer_config": SMALL.to_dict() | {"colour": 1}}, "unexpected keyword argument 'colour'"),
        ({"explorer_config": SMALL.to_dict() | {"embed_dim": "32"}}, "embed_dim must be a whole number, got '32'"),
        ({"explorer_config": SMALL.to_dict() | {"num_heads": 0}}, "num_heads must be between 1 and 1024, got 0"),
        ({"explorer_config": SMALL.to_dict() | {"patch": 0}}, "patch must be between 1 and 512, got 0"),
        ({"explorer_config": SMALL.to_dict() | {"tubelet": 0}}, "tubelet must be between 1 and 64, got 0"),
        ({"explorer_config": SMALL.to_dict() | {"depth": -1}}, "depth must be between 1 and 256, got -1"),
        ({"explorer_config": SMALL.to_dict() | {"norm_eps": "small"}}, "norm_eps must be a number, got 'small'"),
        ({"explorer_config": SMALL.to_dict() | {"num_classes": 10**9}}, "num_classes must be between 0 and 1000000"),
        ({"explorer_config": SMALL.to_dict() | {"img_size": 10**9}}, "img_size must be between 1 and 4096"),
        ({"explorer_config": SMALL.to_dict() | {"img_size": [32]}}, "img_size must be a whole number, got [32]"),
        ({"explorer_config": SMALL.to_dict() | {"fc_norm": "yes"}}, "fc_norm must be true or false, got 'yes'"),
        ({"explorer_config": SMALL.to_dict() | {"pooling": "max"}}, "pooling must be one of mean, first, got 'max'"),
        ({"explorer_config": SMALL.to_dict() | {"num_heads": 3}}, "3 heads do not divide the width 32"),
        (
            {"explorer_config": SMALL.to_dict() | {"embed_dim": 16384, "depth": 256, "num_heads": 16}},
            "the config asks for a network of about 824,",
        ),
        ({"labels": {"0": "a"}}, "the labels must be a list of names, got a dict"),
        ({"labels": ["a", "b"]}, "2 labels for 3 classes"),
        ({"labels": [1, 2, 3]}, "the labels must be a list of names, got a list"),
        ({"training": ["fast"]}, "bad explorer metadata 'training' (it needs settings.steps"),
        ({"training": TRAINING | {"device": None}}, "bad explorer metadata 'training' (it needs settings.steps"),
    ],
)
def test_bad_explorer_metadata_is_named(tmp_path, changes, message):
    assert message in refused(explorer_file(tmp_path, **changes))


def test_the_native_size_of_a_file_is_read_only_when_it_is_a_size(tmp_path):
    assert native_img_size(explorer_file(tmp_path)) == 32
    for size in (float("inf"), 10**9, "32", -32):
        assert native_img_size(explorer_file(tmp_path, explorer_config=SMALL.to_dict() | {"img_size": size})) is None


# --- official .pth dicts --------------------------------------------------------------------


def official_file(tmp_path: Path, change, name: str = "model.pth") -> Path:
    state = dict(VideoViT(SMALL).state_dict())
    change(state)
    torch.save({"model": state}, tmp_path / name)
    return tmp_path / name


def put(key, value):
    return lambda state: state.update({key: value})


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")  # torch's own, loading the sparse one
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (put("patch_embed.proj.weight", torch.zeros(0, 3, 2, 8, 8)), "embed_dim must be between 1 and 16384, got 0"),
        (put("patch_embed.proj.weight", torch.zeros(32, 3 * 2 * 8 * 8)), "a video ViT has a 5-D Conv3d kernel"),
        (put("head.weight", torch.tensor(1.0)), "head.weight is (); it should be a matrix"),
        (put("blocks.0.mlp.fc1.weight", torch.zeros(128)), "blocks.0.mlp.fc1.weight is (128,); it should be a matrix"),
        (put("blocks.99999.norm1.weight", torch.ones(32)), "depth must be between 1 and 256, got 100000"),
        (put("head.weight", torch.zeros(3, 16)), "head.weight: checkpoint (3, 16) vs model (3, 32)"),
        (put("length_embed", torch.zeros(2, 2, 32)), "length_embed is (2, 2, 32); RLT's is (1, T', D)"),
        (put("length_embed", torch.zeros(1, 2, 16)), "length_embed.weight: checkpoint (2, 16) vs model (2, 32)"),
        (put("length_embed", torch.zeros(1, 0, 32)), "num_frames must be between 1 and 1024, got 0"),
        (put("head.weight", torch.empty(10**6, 10**6, device="meta")), "head.weight is a meta-device tensor"),
        (
            put(
                "head.weight",
                torch.sparse_coo_tensor(torch.zeros(2, 1, dtype=torch.long), [1.0], (3, 32), check_invariants=True),
            ),
            "head.weight is a sparse_coo tensor (3, 32); weights must be dense numbers",
        ),
        (put("head.bias", torch.zeros(3, dtype=torch.complex64)), "head.bias is a complex tensor (3,)"),
    ],
)
def test_a_bad_official_checkpoint_is_named(tmp_path, change, message):
    assert message in refused(official_file(tmp_path, change), num_heads=2)


def test_a_head_count_given_by_hand_is_checked(tmp_path):
    path = official_file(tmp_path, lambda state: None)
    assert "num_heads must be between 1 and 1024, got 0" in refused(path, num_heads=0)
    assert "5 heads do not divide the width 32" in refused(path, num_heads=5)


# --- RLT: its length embedding and its Lightning files ------------------------------------------

RLT_CONFIG = VideoViTConfig(embed_dim=32, depth=1, num_heads=2, num_classes=3, num_frames=8, img_size=32, patch=8)


def rlt_file(tmp_path: Path, name: str, length: torch.Tensor | None) -> Path:
    """An official-layout RLT checkpoint: VideoMAE keys, and its learned length embedding as a (1, T', D)
    parameter, as its code (vit_helpers.VisionTransformer) holds it; the same weights every time."""
    torch.manual_seed(0)
    state = dict(VideoViT(RLT_CONFIG).state_dict())
    if length is not None:
        state["length_embed"] = length
    torch.save({"model": state}, tmp_path / name)
    return tmp_path / name


def corner_changes_once() -> np.ndarray:
    """8 grey frames of 32 px; the top-left 8 x 8 cell turns white from frame 4 (tubelet 2) on. RLT keeps
    tubelet 0 (16 cells) and the corner at tubelet 2; runs: the corner 2 and 2, every other cell 4."""
    frames = np.full((8, 32, 32, 3), GREY, dtype=np.uint8)
    frames[4:, :8, :8] = 255
    return frames


def official_rlt_logits(model: VideoViT, frames: np.ndarray, length: torch.Tensor | None) -> torch.Tensor:
    """RLT's code, written out: the kept tubelets embedded, plus the position of their own index, plus
    index_select(length_embed, 1, lengths - 1); then the blocks, mean pooling, fc_norm and the head."""
    keep = torch.tensor([*range(16), 32])  # (t, h, w) order: tubelet 0, then cell (2, 0, 0)
    lengths = torch.tensor([2, *[4] * 15, 2])
    video = normalize_video(torch.from_numpy(frames))[None]
    proj = model.patch_embed.proj
    x = model.patchify(video)[:, keep] @ proj.weight.reshape(32, -1).T + proj.bias
    x = x + sincos_table(64, 32)[keep]
    if length is not None:
        x = x + torch.index_select(length, 1, lengths - 1)
    with torch.no_grad():
        return model.fc_norm(model.forward_blocks(x).mean(1)) @ model.head.weight.T + model.head.bias


def rlt_run(path: Path) -> tuple[VideoViT, np.ndarray]:
    model, _ = load_model(path, num_heads=2)
    model.resize_input(8, 32)
    trace = analyze(make_clip(corner_changes_once()), model, make_reducer("rlt"), device="cpu", saliency=None)
    assert trace.tokens_per_layer[0] == 17
    return model, trace.logits


def test_an_rlt_length_embedding_is_added_as_rlts_code_adds_it(tmp_path):
    length = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(2))  # T' = 4 for 8 frames
    model, logits = rlt_run(rlt_file(tmp_path, "rlt.pth", length))
    assert torch.equal(model.length_embed.weight, length[0])
    expected = official_rlt_logits(model, corner_changes_once(), length)
    torch.testing.assert_close(torch.as_tensor(logits).reshape(expected.shape), expected, atol=1e-5, rtol=1e-5)
    without = official_rlt_logits(model, corner_changes_once(), None)
    assert not torch.allclose(without, expected, atol=1e-3), "the embedding must matter in this test"


def test_without_a_length_embedding_rlt_is_unchanged(tmp_path):
    plain, logits = rlt_run(rlt_file(tmp_path, "plain.pth", None))
    assert plain.length_embed is None
    expected = official_rlt_logits(plain, corner_changes_once(), None)
    torch.testing.assert_close(torch.as_tensor(logits).reshape(expected.shape), expected, atol=1e-5, rtol=1e-5)
    _, zero = rlt_run(rlt_file(tmp_path, "zero.pth", torch.zeros(1, 4, 32)))
    np.testing.assert_allclose(zero, logits, atol=1e-6)


def lightning_checkpoint(path: Path, class_path: str, state: dict) -> None:
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
        prefixed = {f"model.{k}": v for k, v in state.items()}
        torch.save({"state_dict": prefixed, "hyper_parameters": holder(lr=1e-3), "epoch": 3}, path)
    finally:
        for name in made:
            del sys.modules[name]


def test_an_rlt_lightning_checkpoint_loads_and_an_unknown_class_in_one_is_refused(tmp_path):
    length = torch.randn(1, 2, 32)
    state = dict(VideoViT(SMALL).state_dict()) | {"length_embed": length}
    lightning_checkpoint(tmp_path / "rlt.ckpt", "pytorch_lightning.utilities.parsing.AttributeDict", state)
    model, report = load_model(tmp_path / "rlt.ckpt", num_heads=2)
    assert report.format == "videomae" and not report.missing and not report.unexpected
    assert report.config.length_embed and torch.equal(model.length_embed.weight, length[0])
    assert torch.equal(model.head.weight, state["head.weight"])
    lightning_checkpoint(tmp_path / "other.ckpt", "some_library.settings.Settings", state)
    message = refused(tmp_path / "other.ckpt", num_heads=2)
    assert "refused: the file would run code when loaded (it imports some_library.settings.Settings)" in message


# --- downloads ------------------------------------------------------------------------------


def fake_hub(monkeypatch, files: list[str]) -> dict:
    """huggingface_hub's two calls, answered from `files`; what the download asked for lands in the dict."""
    import huggingface_hub

    asked: dict = {}

    def snapshot(repo_id, local_dir, allow_patterns):
        asked["patterns"] = allow_patterns
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        for name in files:
            (Path(local_dir) / name).write_text("x")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo: files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    return asked


def test_download_takes_pytorch_model_bin_when_there_is_no_safetensors(tmp_path, monkeypatch):
    asked = fake_hub(monkeypatch, ["config.json", "pytorch_model.bin"])
    assert download_videomae("org/model", tmp_path / "w") == tmp_path / "w"
    assert asked["patterns"] == ["config.json", "pytorch_model.bin"]
    asked = fake_hub(monkeypatch, ["config.json", "pytorch_model.bin", "model.safetensors"])
    download_videomae("org/model", tmp_path / "s")
    assert asked["patterns"] == ["config.json", "*.safetensors"]
    fake_hub(monkeypatch, ["config.json", "README.md"])
    with pytest.raises(CheckpointError, match="org/model has neither .safetensors weights nor a pytorch_model.bin"):
        download_videomae("org/model", tmp_path / "v")
