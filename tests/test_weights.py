"""Checkpoint loading, checked by comparing outputs with transformers' VideoMAE.

A tiny random transformers model is the independent reference. The official VideoMAE
layout is written from its weights with a rename table of this file's own, the inverse
of the one in models/weights.py.
"""

import argparse
import json
import pickle
import random

import pytest
import timm
import torch
from safetensors.torch import save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from explorer.models.video_vit import VideoViT, VideoViTConfig
from explorer.models.weights import CheckpointError, load_decoder, load_model, save_weights

LABELS = ["archery", "bowling", "juggling balls"]
DEPTH, WIDTH, HEADS = 2, 64, 2
# official name -> transformers name, per block
BLOCK_TO_HF = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}


def tiny_config(**overrides) -> VideoMAEConfig:
    settings = dict(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=WIDTH,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        intermediate_size=128,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
    )
    return VideoMAEConfig(**(settings | overrides))


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random values everywhere (LayerNorms and biases too), so any mis-mapping shows."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            is_norm_scale = name.endswith("weight") and p.ndim == 1
            p.copy_(1 + 0.3 * noise if is_norm_scale else 0.1 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def hf_classifier() -> VideoMAEForVideoClassification:
    return randomized(VideoMAEForVideoClassification(tiny_config()))


@pytest.fixture(scope="module")
def hf_pretrain() -> VideoMAEForPreTraining:
    # as in the released pre-training models: no mean pooling, so a final LayerNorm
    return randomized(VideoMAEForPreTraining(tiny_config(use_mean_pooling=False)))


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


def hf_logits(hf, video):
    with torch.no_grad():
        return hf(pixel_values=video.permute(0, 2, 1, 3, 4)).logits


def our_output(model: VideoViT, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(video)


def our_features(model: VideoViT, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_blocks(model.embed(video))


def to_official(hf_sd: dict, src: str, dst: str, depth: int) -> dict:
    """transformers encoder weights under `src` -> official VideoMAE names under `dst`."""
    out = {}
    for n in range(depth):
        a, b = f"{src}{n}.", f"{dst}{n}."
        att = a + "attention.attention."
        out[b + "attn.qkv.weight"] = torch.cat([hf_sd[att + x + ".weight"] for x in ("query", "key", "value")])
        out[b + "attn.q_bias"] = hf_sd[att + "query.bias"]
        out[b + "attn.v_bias"] = hf_sd[att + "value.bias"]
        for ours, theirs in BLOCK_TO_HF.items():
            for kind in ("weight", "bias"):
                out[f"{b}{ours}.{kind}"] = hf_sd[f"{a}{theirs}.{kind}"]
    return out


def renamed(sd: dict, pairs: list[tuple[str, str]]) -> dict:
    """Weight and bias of each (official, transformers) module name pair."""
    return {f"{ours}.{kind}": sd[f"{theirs}.{kind}"] for ours, theirs in pairs for kind in ("weight", "bias")}


def official_finetuned(hf: VideoMAEForVideoClassification) -> dict:
    sd = hf.state_dict()
    out = to_official(sd, "videomae.encoder.layer.", "blocks.", DEPTH)
    return out | renamed(
        sd,
        [
            ("patch_embed.proj", "videomae.embeddings.patch_embeddings.projection"),
            ("fc_norm", "fc_norm"),
            ("head", "classifier"),
        ],
    )


def official_pretrain(hf: VideoMAEForPreTraining) -> dict:
    sd = hf.state_dict()
    out = to_official(sd, "videomae.encoder.layer.", "encoder.blocks.", DEPTH)
    out |= to_official(sd, "decoder.decoder_layers.", "decoder.blocks.", 1)
    out |= renamed(
        sd,
        [
            ("encoder.patch_embed.proj", "videomae.embeddings.patch_embeddings.projection"),
            ("encoder.norm", "videomae.layernorm"),
            ("decoder.norm", "decoder.norm"),
            ("decoder.head", "decoder.head"),
        ],
    )
    out["encoder_to_decoder.weight"] = sd["encoder_to_decoder.weight"]
    out["mask_token"] = sd["mask_token"]
    return out


# --- Hugging Face layout ------------------------------------------------------------------


def test_huggingface_folder_gives_the_same_logits(hf_classifier, video, tmp_path):
    hf_classifier.save_pretrained(tmp_path)
    model, report = load_model(tmp_path)
    torch.testing.assert_close(our_output(model, video), hf_logits(hf_classifier, video), atol=1e-5, rtol=1e-5)
    assert report.format == "huggingface"
    assert report.labels == LABELS
    assert (report.missing, report.unexpected, report.ignored) == ([], [], [])
    assert report.config.norm_eps == 1e-12  # transformers' layer_norm_eps default, kept
    assert not model.training and next(model.parameters()).dtype == torch.float32


def test_a_huggingface_model_saved_in_explorer_format_keeps_its_outputs(hf_classifier, video, tmp_path):
    hf_classifier.save_pretrained(tmp_path / "hf")
    model, report = load_model(tmp_path / "hf")
    save_weights(model, tmp_path / "demo.safetensors", labels=report.labels)
    again, _ = load_model(tmp_path / "demo.safetensors")
    assert again.fc_norm.eps == model.fc_norm.eps == 1e-5  # transformers' fc_norm eps survives the round trip
    assert torch.equal(our_output(again, video), our_output(model, video))


def test_huggingface_single_files(hf_classifier, video, tmp_path):
    hf_classifier.save_pretrained(tmp_path)
    model, _ = load_model(tmp_path / "model.safetensors")
    torch.testing.assert_close(our_output(model, video), hf_logits(hf_classifier, video), atol=1e-5, rtol=1e-5)
    (tmp_path / "model.safetensors").unlink()
    torch.save(hf_classifier.state_dict(), tmp_path / "pytorch_model.bin")
    model, report = load_model(tmp_path)
    torch.testing.assert_close(our_output(model, video), hf_logits(hf_classifier, video), atol=1e-5, rtol=1e-5)
    assert report.labels == LABELS


def test_huggingface_pretraining_gives_the_encoder_features(hf_pretrain, video, tmp_path):
    hf_pretrain.save_pretrained(tmp_path)
    model, report = load_model(tmp_path)
    with torch.no_grad():
        expected = hf_pretrain.videomae(video.permute(0, 2, 1, 3, 4)).last_hidden_state
    torch.testing.assert_close(our_features(model, video), expected, atol=1e-5, rtol=1e-5)
    assert report.format == "huggingface-pretrain"
    assert report.config.num_classes == 0 and report.labels is None
    assert (report.missing, report.unexpected) == ([], [])
    assert "mask_token" in report.ignored and "encoder_to_decoder.weight" in report.ignored
    assert any(k.startswith("decoder.") for k in report.ignored)


@pytest.mark.parametrize("layout", ["huggingface", "official"])
def test_a_classifier_of_the_first_token_gives_the_same_logits(layout, video, tmp_path):
    """Fine-tunes made from the pre-training checkpoint: no mean pooling, the final norm, then token 0."""
    hf = randomized(VideoMAEForVideoClassification(tiny_config(use_mean_pooling=False)))
    hf.save_pretrained(tmp_path / "hf")
    path = tmp_path / "hf"
    if layout == "official":
        sd = hf.state_dict()
        official = to_official(sd, "videomae.encoder.layer.", "blocks.", DEPTH)
        official |= renamed(
            sd,
            [
                ("patch_embed.proj", "videomae.embeddings.patch_embeddings.projection"),
                ("norm", "videomae.layernorm"),
                ("head", "classifier"),
            ],
        )
        path = tmp_path / "first.pth"
        torch.save({"model": official}, path)
    model, report = load_model(path, num_heads=HEADS)
    assert report.config.pooling == "first" and not report.config.fc_norm
    if layout == "official":
        model.resize_input(num_frames=4, img_size=32)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.eps = 1e-12
    torch.testing.assert_close(our_output(model, video), hf_logits(hf, video), atol=1e-5, rtol=1e-5)
    assert (report.missing, report.unexpected) == ([], [])


def test_qkv_bias_false_in_a_transformers_4_config_gives_zero_q_and_v_biases(video, tmp_path):
    hf = randomized(VideoMAEForVideoClassification(tiny_config(qv_bias=False)))
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())  # written as transformers 4.x names it
    config["qkv_bias"] = config.pop("qv_bias")
    (tmp_path / "config.json").write_text(json.dumps(config))
    model, report = load_model(tmp_path)
    torch.testing.assert_close(our_output(model, video), hf_logits(hf, video), atol=1e-5, rtol=1e-5)
    assert all(torch.count_nonzero(b.attn.qkv.bias) == 0 for b in model.blocks)


# --- official layout ----------------------------------------------------------------------


@pytest.mark.parametrize("container", ["module", "model+args", "ddp-prefix", "safetensors"])
def test_official_finetuned_gives_the_same_logits(container, hf_classifier, video, tmp_path):
    sd = official_finetuned(hf_classifier)
    path = tmp_path / "videomae.pth"
    if container == "module":
        torch.save({"module": sd}, path)
    elif container == "model+args":
        torch.save({"model": sd, "epoch": 3, "args": argparse.Namespace(lr=1e-3)}, path)
    elif container == "ddp-prefix":
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    else:
        path = tmp_path / "videomae.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    model, report = load_model(path, num_heads=HEADS)
    model.resize_input(num_frames=4, img_size=32)  # official files do not record the input size
    # the official eps is 1e-6 where transformers has 1e-12: match theirs for an exact comparison
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm) and m is not model.fc_norm:
            m.eps = 1e-12
    model.fc_norm.eps = 1e-5
    torch.testing.assert_close(our_output(model, video), hf_logits(hf_classifier, video), atol=1e-5, rtol=1e-5)
    assert report.format == "videomae"
    assert report.config == VideoViTConfig(
        embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=2.0, num_classes=3, tubelet=2, patch=8, norm_eps=1e-6
    )
    assert (report.missing, report.unexpected, report.ignored) == ([], [], [])


def test_official_pretraining_gives_the_encoder_features(hf_pretrain, video, tmp_path):
    torch.save({"model": official_pretrain(hf_pretrain)}, tmp_path / "pretrain.pth")
    model, report = load_model(tmp_path / "pretrain.pth", num_heads=HEADS)
    model.resize_input(num_frames=4, img_size=32)  # official files do not record the input size
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-12
    with torch.no_grad():
        expected = hf_pretrain.videomae(video.permute(0, 2, 1, 3, 4)).last_hidden_state
    torch.testing.assert_close(our_features(model, video), expected, atol=1e-5, rtol=1e-5)
    # no head: the encoder's output is its normalized tokens pooled by mean (not token 0, as a classifier's)
    torch.testing.assert_close(our_output(model, video), expected.mean(1), atol=1e-5, rtol=1e-5)
    assert report.format == "videomae-pretrain"
    assert report.config.num_classes == 0 and not report.config.fc_norm and report.config.pooling == "mean"
    assert (report.missing, report.unexpected) == ([], [])
    assert {"mask_token", "encoder_to_decoder.weight", "decoder.norm.weight"} <= set(report.ignored)
    assert not any(k.startswith("encoder.") for k in report.ignored)
    assert "ignored" in report.summary()


def test_official_heads_come_from_the_width_table(hf_classifier, tmp_path):
    torch.save({"module": official_finetuned(hf_classifier)}, tmp_path / "videomae.pth")
    with pytest.raises(CheckpointError, match="num_heads"):  # 64 wide: not a standard ViT
        load_model(tmp_path / "videomae.pth")
    base = VideoViT(VideoViTConfig(embed_dim=192, depth=1, num_heads=3, num_classes=5))
    torch.save({"model": base.state_dict()}, tmp_path / "tiny.pth")
    assert load_model(tmp_path / "tiny.pth")[1].config.num_heads == 3


def test_missing_and_unexpected_keys_are_reported(hf_classifier, tmp_path):
    sd = official_finetuned(hf_classifier)
    del sd["blocks.1.norm2.bias"]
    sd["junk.weight"] = torch.zeros(3)
    torch.save({"model": sd}, tmp_path / "videomae.pth")
    _, report = load_model(tmp_path / "videomae.pth", num_heads=HEADS)
    assert report.missing == ["blocks.1.norm2.bias"]
    assert report.unexpected == ["junk.weight"]
    assert "1 missing" in report.summary() and "1 unexpected" in report.summary()


def test_a_wrong_shape_names_the_key_and_both_shapes(hf_classifier, tmp_path):
    sd = official_finetuned(hf_classifier)
    sd["blocks.1.mlp.fc1.weight"] = torch.zeros(256, WIDTH)
    torch.save({"model": sd}, tmp_path / "videomae.pth")
    expected = r"blocks\.1\.mlp\.fc1\.weight: checkpoint \(256, 64\) vs model \(128, 64\)"
    with pytest.raises(CheckpointError, match=expected):
        load_model(tmp_path / "videomae.pth", num_heads=HEADS)


# --- the explorer's own format ------------------------------------------------------------


def test_explorer_format_round_trip(video, tmp_path):
    cfg = VideoViTConfig(
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=HEADS,
        num_classes=3,
        num_frames=4,
        img_size=32,
        patch=8,
        length_embed=True,
    )
    model = randomized(VideoViT(cfg))
    save_weights(model, tmp_path / "demo.safetensors", labels=LABELS)
    loaded, report = load_model(tmp_path / "demo.safetensors")
    assert torch.equal(our_output(loaded, video), our_output(model, video))
    assert report.format == "explorer" and report.config == cfg and report.labels == LABELS
    assert (report.missing, report.unexpected, report.ignored) == ([], [], [])


# --- files that are not checkpoints -------------------------------------------------------


class WritesAFile:
    """Unpickling this calls open(path, "w"): code run by the loader."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def pickle_dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the raw pickle
@pytest.mark.parametrize("save", [torch.save, pickle_dump], ids=["torch.save", "pickle"])
def test_a_pickle_that_runs_code_is_refused(save, tmp_path):
    marker = tmp_path / "ran"
    save({"model": WritesAFile(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused: the file would run code"):
        load_model(tmp_path / "evil.pth")
    assert not marker.exists()
    pickle.loads(pickle.dumps(WritesAFile(tmp_path / "control")))  # the payload is live
    assert (tmp_path / "control").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (random.Random(0).randbytes(4096), "not a checkpoint"),
        (b"just some notes\nnot weights\n", "not a checkpoint"),
        (b"", "empty file"),
    ],
    ids=["random bytes", "text", "empty"],
)
def test_junk_files_are_refused(content, message, tmp_path):
    (tmp_path / "weights.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "weights.pth")


def test_missing_path_and_bare_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "nowhere.pth")
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path)


def test_other_architectures_are_refused(tmp_path):
    image_vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    torch.save(image_vit, tmp_path / "vit.pth")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "vit.pth")
    torch.save(
        {"state_dict": {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}},
        tmp_path / "resnet.pth",
    )
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "resnet.pth")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"embeddings.word_embeddings.weight": torch.zeros(4, 4)}, tmp_path / "bert" / "model.safetensors")
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "bert")


def test_videomae_model_has_no_final_norm_with_mean_pooling():
    """The fact the pre-training mapping rests on: VideoMAEModel's last LayerNorm exists only
    without mean pooling (there it is our `norm`); with it, fc_norm sits in the classifier."""
    assert VideoMAEModel(tiny_config(use_mean_pooling=True)).layernorm is None
    assert VideoMAEModel(tiny_config(use_mean_pooling=False)).layernorm is not None


# --- the pre-training decoder -------------------------------------------------------------


def tube_mask(seed: int = 0) -> torch.Tensor:
    """(2, 32) bool, True where hidden: per clip, 12 of the 16 places of the 2 x 4 x 4 grid, as tubes."""
    gen = torch.Generator().manual_seed(seed)
    spatial = torch.stack([torch.randperm(16, generator=gen) < 12 for _ in range(2)])
    return spatial.repeat(1, 2)


def hf_prediction(hf: VideoMAEForPreTraining, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(pixel_values=video.permute(0, 2, 1, 3, 4), bool_masked_pos=mask).logits


def our_prediction(model: VideoViT, decoder, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keep = torch.stack([(~row).nonzero()[:, 0] for row in mask])
    with torch.no_grad():
        return decoder(model.forward_blocks(model.embed(video, keep)), keep, mask.shape[1])


@pytest.mark.parametrize("qv_bias", [True, False])
def test_huggingface_pretraining_decoder_predicts_what_transformers_predicts(qv_bias, video, tmp_path):
    hf = randomized(VideoMAEForPreTraining(tiny_config(use_mean_pooling=False, qv_bias=qv_bias)))
    hf.save_pretrained(tmp_path)
    model, _ = load_model(tmp_path)
    decoder = load_decoder(tmp_path)
    assert (
        decoder.cfg.encoder_dim,
        decoder.cfg.embed_dim,
        decoder.cfg.depth,
        decoder.cfg.num_heads,
        decoder.cfg.out_dim,
    ) == (WIDTH, 32, 1, 2, 3 * 2 * 8 * 8)
    assert not decoder.training and next(decoder.parameters()).dtype == torch.float32
    mask = tube_mask()
    expected = hf_prediction(hf, video, mask)
    assert expected.shape == (2, 24, 384)
    torch.testing.assert_close(our_prediction(model, decoder, video, mask), expected, atol=1e-5, rtol=1e-5)


def test_official_pretraining_decoder_predicts_what_transformers_predicts(hf_pretrain, video, tmp_path):
    torch.save({"model": official_pretrain(hf_pretrain)}, tmp_path / "pretrain.pth")
    model, report = load_model(tmp_path / "pretrain.pth", num_heads=HEADS)
    model.resize_input(num_frames=4, img_size=32)
    decoder = load_decoder(tmp_path / "pretrain.pth", num_heads=2)
    # official LayerNorms have eps 1e-6; transformers 1e-12, and 1e-5 for the decoder's last norm
    for m in [*model.modules(), *decoder.modules()]:
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-12
    decoder.norm.eps = 1e-5
    mask = tube_mask(1)
    torch.testing.assert_close(
        our_prediction(model, decoder, video, mask), hf_prediction(hf_pretrain, video, mask), atol=1e-5, rtol=1e-5
    )
    assert "loaded separately" in report.summary()


def test_official_decoder_heads_come_from_the_decoder_width_table(hf_pretrain, tmp_path):
    torch.save({"model": official_pretrain(hf_pretrain)}, tmp_path / "pretrain.pth")
    with pytest.raises(CheckpointError, match="num_heads"):  # 32 wide: no official decoder
        load_decoder(tmp_path / "pretrain.pth")
    sd = official_pretrain(hf_pretrain)
    sd = {k: v for k, v in sd.items() if not k.startswith(("decoder.", "encoder_to_decoder", "mask_token"))}
    sd |= {f"decoder.{k}": v for k, v in _official_decoder(width=384).items()}
    sd |= {"encoder_to_decoder.weight": torch.zeros(384, WIDTH), "mask_token": torch.zeros(1, 1, 384)}
    torch.save({"model": sd}, tmp_path / "base.pth")
    decoder = load_decoder(tmp_path / "base.pth")
    assert (decoder.cfg.embed_dim, decoder.cfg.num_heads, decoder.cfg.norm_eps) == (384, 6, 1e-6)  # ViT-B's


def _official_decoder(width: int) -> dict:
    """One official decoder block (fused qkv, q/v biases), its norm and a 2 x 16 x 16 head."""
    names = {
        "norm1.weight": (width,),
        "norm1.bias": (width,),
        "attn.qkv.weight": (3 * width, width),
        "attn.q_bias": (width,),
        "attn.v_bias": (width,),
        "attn.proj.weight": (width, width),
        "attn.proj.bias": (width,),
        "norm2.weight": (width,),
        "norm2.bias": (width,),
        "mlp.fc1.weight": (4 * width, width),
        "mlp.fc1.bias": (4 * width,),
        "mlp.fc2.weight": (width, 4 * width),
        "mlp.fc2.bias": (width,),
    }
    out = {f"blocks.0.{k}": torch.zeros(shape) for k, shape in names.items()}
    return out | {
        "norm.weight": torch.ones(width),
        "norm.bias": torch.zeros(width),
        "head.weight": torch.zeros(1536, width),
        "head.bias": torch.zeros(1536),
    }


def test_checkpoints_without_a_decoder_give_none(hf_classifier, tmp_path):
    torch.save({"module": official_finetuned(hf_classifier)}, tmp_path / "finetuned.pth")
    assert load_decoder(tmp_path / "finetuned.pth") is None
    hf_classifier.save_pretrained(tmp_path / "hf")
    assert load_decoder(tmp_path / "hf") is None
    save_weights(VideoViT(VideoViTConfig(embed_dim=192, depth=1, num_heads=3)), tmp_path / "demo.safetensors")
    assert load_decoder(tmp_path / "demo.safetensors") is None


def test_a_decoder_with_a_missing_or_extra_key_is_refused_by_name(hf_pretrain, tmp_path):
    sd = official_pretrain(hf_pretrain)
    del sd["decoder.blocks.0.norm2.bias"]
    torch.save({"model": sd}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing: blocks\.0\.norm2\.bias"):
        load_decoder(tmp_path / "missing.pth", num_heads=2)
    sd = official_pretrain(hf_pretrain) | {"decoder.pos_embed": torch.zeros(1, 32, 32)}
    torch.save({"model": sd}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected: pos_embed"):
        load_decoder(tmp_path / "extra.pth", num_heads=2)


def test_a_decoder_of_the_wrong_shape_names_the_key(hf_pretrain, tmp_path):
    sd = official_pretrain(hf_pretrain)
    sd["decoder.blocks.0.mlp.fc2.weight"] = torch.zeros(32, 48)
    torch.save({"model": sd}, tmp_path / "pretrain.pth")
    expected = r"blocks\.0\.mlp\.fc2\.weight: checkpoint \(32, 48\) vs model \(32, 64\)"
    with pytest.raises(CheckpointError, match=expected):
        load_decoder(tmp_path / "pretrain.pth", num_heads=2)
