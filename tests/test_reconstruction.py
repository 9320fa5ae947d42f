"""The pre-training decoder loads from synthetic checkpoints, and the reconstruction figure is drawn as VideoMAE's."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from explorer.models.reducers.mask import Masking
from explorer.models.video_vit import VideoViT, VideoViTConfig
from explorer.models.videomae_decoder import DecoderConfig, VideoMAEDecoder
from explorer.models.weights import load_decoder, load_model
from explorer.reconstruction import reconstruct
from tests.clips import make_clip

WIDTH, DEC_WIDTH, DEC_DEPTH = 192, 192, 2  # widths of the official table: 3 heads each


def official_block(prefix: str, width: int) -> dict[str, torch.Tensor]:
    shapes = {
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
    return {prefix + name: torch.randn(shape) for name, shape in shapes.items()}


def official_encoder(prefix: str = "") -> dict[str, torch.Tensor]:
    sd = {
        f"{prefix}patch_embed.proj.weight": torch.randn(WIDTH, 3, 2, 16, 16),
        f"{prefix}patch_embed.proj.bias": torch.randn(WIDTH),
    }
    return sd | official_block(f"{prefix}blocks.0.", WIDTH)


def official_pretrain() -> dict[str, torch.Tensor]:
    sd = official_encoder("encoder.")
    sd |= {"encoder.norm.weight": torch.randn(WIDTH), "encoder.norm.bias": torch.randn(WIDTH)}
    for n in range(DEC_DEPTH):
        sd |= official_block(f"decoder.blocks.{n}.", DEC_WIDTH)
    return sd | {
        "decoder.norm.weight": torch.randn(DEC_WIDTH),
        "decoder.norm.bias": torch.randn(DEC_WIDTH),
        "decoder.head.weight": torch.randn(1536, DEC_WIDTH),
        "decoder.head.bias": torch.randn(1536),
        "encoder_to_decoder.weight": torch.randn(DEC_WIDTH, WIDTH),
        "mask_token": torch.randn(1, 1, DEC_WIDTH),
    }


def hf_layer(prefix: str, width: int, hidden: int) -> dict[str, torch.Tensor]:
    shapes = {
        "attention.attention.query.weight": (width, width),
        "attention.attention.q_bias": (width,),
        "attention.attention.key.weight": (width, width),
        "attention.attention.value.weight": (width, width),
        "attention.attention.v_bias": (width,),
        "attention.output.dense.weight": (width, width),
        "attention.output.dense.bias": (width,),
        "intermediate.dense.weight": (hidden, width),
        "intermediate.dense.bias": (hidden,),
        "output.dense.weight": (width, hidden),
        "output.dense.bias": (width,),
        "layernorm_before.weight": (width,),
        "layernorm_before.bias": (width,),
        "layernorm_after.weight": (width,),
        "layernorm_after.bias": (width,),
    }
    return {prefix + name: torch.randn(shape) for name, shape in shapes.items()}


def hf_pretrain_folder(folder, **settings) -> None:
    """A VideoMAEForPreTraining folder as on the Hub: 6 decoder heads at width 96 say config.json, not a table."""
    width, dec_width = 64, 96
    sd = {
        "videomae.embeddings.patch_embeddings.projection.weight": torch.randn(width, 3, 2, 16, 16),
        "videomae.embeddings.patch_embeddings.projection.bias": torch.randn(width),
        "videomae.layernorm.weight": torch.randn(width),
        "videomae.layernorm.bias": torch.randn(width),
        "decoder.norm.weight": torch.randn(dec_width),
        "decoder.norm.bias": torch.randn(dec_width),
        "decoder.head.weight": torch.randn(1536, dec_width),
        "decoder.head.bias": torch.randn(1536),
        "encoder_to_decoder.weight": torch.randn(dec_width, width),
        "mask_token": torch.randn(1, 1, dec_width),
    }
    sd |= hf_layer("videomae.encoder.layer.0.", width, 128)
    for n in range(3):
        sd |= hf_layer(f"decoder.decoder_layers.{n}.", dec_width, 192)
    folder.mkdir()
    save_file(sd, folder / "model.safetensors")
    config = {
        "model_type": "videomae",
        "hidden_size": width,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "image_size": 224,
        "patch_size": 16,
        "num_frames": 16,
        "tubelet_size": 2,
        "layer_norm_eps": 1e-12,
        "use_mean_pooling": False,
        "qv_bias": True,
        "decoder_hidden_size": dec_width,
        "decoder_num_hidden_layers": 3,
        "decoder_num_attention_heads": 6,
        "decoder_intermediate_size": 192,
    }
    (folder / "config.json").write_text(json.dumps(config | settings))


def test_a_synthetic_official_pretraining_checkpoint_loads_encoder_and_decoder_whole(tmp_path):
    torch.save({"model": official_pretrain()}, tmp_path / "pretrain.pth")
    model, report = load_model(tmp_path / "pretrain.pth")
    decoder = load_decoder(tmp_path / "pretrain.pth")
    assert (report.missing, report.unexpected) == ([], [])
    assert not model.cfg.fc_norm and model.cfg.num_classes == 0  # the encoder's final norm, no classifier
    assert decoder.cfg == DecoderConfig(
        encoder_dim=WIDTH, embed_dim=DEC_WIDTH, depth=DEC_DEPTH, num_heads=3, out_dim=1536
    )
    assert decoder.mask_token.shape == (1, 1, DEC_WIDTH) and decoder.head.weight.shape == (1536, DEC_WIDTH)
    assert decoder.blocks[1].attn.qkv.bias.shape == (3 * DEC_WIDTH,)


def test_a_synthetic_huggingface_pretraining_folder_loads_encoder_and_decoder_whole(tmp_path):
    hf_pretrain_folder(tmp_path / "hf")
    model, report = load_model(tmp_path / "hf")
    decoder = load_decoder(tmp_path / "hf")
    assert (report.missing, report.unexpected) == ([], [])
    assert (decoder.cfg.encoder_dim, decoder.cfg.embed_dim, decoder.cfg.depth, decoder.cfg.num_heads) == (64, 96, 3, 6)
    assert (decoder.cfg.norm_eps, decoder.cfg.head_norm_eps) == (1e-12, 1e-5)  # as transformers builds them
    assert decoder.cfg.normalized_target  # norm_pix_loss: transformers' default, true
    assert decoder.blocks[2].attn.qkv.weight.shape == (3 * 96, 96)
    assert decoder.blocks[2].mlp.fc1.weight.shape == (192, 96)


def test_an_encoder_only_checkpoint_has_no_decoder(tmp_path):
    torch.save(
        {
            "model": official_encoder()
            | {
                "fc_norm.weight": torch.ones(WIDTH),
                "fc_norm.bias": torch.zeros(WIDTH),
                "head.weight": torch.zeros(5, WIDTH),
                "head.bias": torch.zeros(5),
            }
        },
        tmp_path / "finetuned.pth",
    )
    assert load_decoder(tmp_path / "finetuned.pth") is None


# --- the figure ---------------------------------------------------------------------------

SMALL = VideoViTConfig(
    embed_dim=64, depth=1, num_heads=2, num_classes=0, num_frames=4, img_size=32, patch=8, fc_norm=False
)


def small_pair(**decoder_settings) -> tuple[VideoViT, VideoMAEDecoder]:
    torch.manual_seed(0)
    decoder = VideoMAEDecoder(
        DecoderConfig(encoder_dim=64, embed_dim=32, depth=1, num_heads=2, out_dim=3 * 2 * 8 * 8, **decoder_settings)
    )
    return VideoViT(SMALL).eval(), decoder.eval()


def textured_clip():
    """Noise, with one flat patch (std 0: VideoMAE's + 1e-6 keeps it finite)."""
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    frames[0:2, 8:16, 16:24] = (200, 40, 90)
    return make_clip(frames)


def official_targets(frames: np.ndarray) -> list[np.ndarray]:
    """VideoMAE's target, patch by patch: (t h w) order, pixels (p0 p1 p2) and channel last, per-channel normalized."""
    pixels = frames.astype(np.float64) / 255
    targets = []
    for t in range(2):
        for h in range(4):
            for w in range(4):
                patch = pixels[2 * t : 2 * t + 2, 8 * h : 8 * h + 8, 8 * w : 8 * w + 8].reshape(-1, 3)
                norm = (patch - patch.mean(axis=0)) / (patch.std(axis=0, ddof=1) + 1e-6)
                targets.append(norm.reshape(-1))
    return targets


def test_a_perfect_prediction_gives_back_the_original_pixels(monkeypatch):
    model, decoder = small_pair()
    clip = textured_clip()
    targets = official_targets(clip.frames)

    def perfect(encoded, keep, num_tokens):
        hidden = sorted(set(range(num_tokens)) - set(keep[0].tolist()))
        return torch.tensor(np.stack([targets[i] for i in hidden]), dtype=torch.float32)[None]

    monkeypatch.setattr(decoder, "forward", perfect)
    keep = np.array([0, 5, 10, 15, 16, 21, 26, 31])  # the flat patch (token 2) is hidden
    result = reconstruct(clip, model, decoder, keep)
    assert np.abs(result.reconstruction.astype(int) - clip.frames.astype(int)).max() <= 1
    assert result.loss < 1e-3  # float32 rounding, blown up by the flat patch's 1e-6 std


def test_a_decoder_of_raw_pixels_is_read_as_such(monkeypatch, tmp_path):
    hf_pretrain_folder(tmp_path / "hf", norm_pix_loss=False)
    assert not load_decoder(tmp_path / "hf").cfg.normalized_target
    model, decoder = small_pair(normalized_target=False)
    clip = textured_clip()
    pixels = [
        clip.frames[2 * t : 2 * t + 2, 8 * h : 8 * h + 8, 8 * w : 8 * w + 8].reshape(-1) / 255
        for t in range(2)
        for h in range(4)
        for w in range(4)
    ]

    def perfect(encoded, keep, num_tokens):
        hidden = sorted(set(range(num_tokens)) - set(keep[0].tolist()))
        return torch.tensor(np.stack([pixels[i] for i in hidden]), dtype=torch.float32)[None]

    monkeypatch.setattr(decoder, "forward", perfect)
    result = reconstruct(clip, model, decoder, np.array([1, 2, 30]))
    assert np.abs(result.reconstruction.astype(int) - clip.frames.astype(int)).max() <= 1


def test_visible_patches_are_kept_exactly_and_hidden_ones_are_painted():
    model, decoder = small_pair()
    clip = textured_clip()
    keep = np.flatnonzero(~(Masking(mask_ratio=0.75, seed=1).select(None, (2, 4, 4), 2, 8).owner < 0))
    result = reconstruct(clip, model, decoder, keep)
    visible = np.repeat(np.repeat(np.repeat(result.visible, 2, 0), 8, 1), 8, 2)  # per pixel
    assert result.visible.sum() == 8 and np.array_equal(np.flatnonzero(result.visible), keep)
    assert np.array_equal(result.original, clip.frames)
    assert np.array_equal(result.reconstruction[visible], clip.frames[visible])
    assert np.array_equal(result.masked[visible], clip.frames[visible])
    assert (result.masked[~visible] == 0).all()
    assert (result.reconstruction[~visible] != clip.frames[~visible]).mean() > 0.9  # a random decoder: not a copy
    assert result.loss > 0.5


def test_reconstruction_needs_the_pre_training_encoder():
    model, decoder = small_pair()
    finetuned = VideoViT(
        VideoViTConfig(embed_dim=64, depth=1, num_heads=2, num_classes=3, num_frames=4, img_size=32, patch=8)
    )
    with pytest.raises(ValueError, match="pre-training encoder"):
        reconstruct(textured_clip(), finetuned, decoder, np.arange(4))
    with pytest.raises(ValueError, match="distinct"):
        reconstruct(textured_clip(), model, decoder, np.array([3, 3]))


VIEW_SCRIPT = """
import streamlit as st
from explorer.analyze import analyze
from explorer.ui.reconstruction import reconstruction_view
from explorer.models.reducers.mask import Masking
from tests.test_reconstruction import small_pair, textured_clip

model, decoder = small_pair()
clip = textured_clip()
reducer = Masking(mask_ratio=st.session_state.get("ratio", 0.75))
trace = analyze(clip, model, reducer, device="cpu", saliency=None)
reconstruction_view(clip, trace, model, None if st.session_state.get("none") else decoder,
                    clip_key="textured", model_key=("small", None, 4, 32))
"""


def test_the_view_draws_three_rows_once_and_says_what_it_needs_without_a_decoder(monkeypatch):
    import explorer.ui.reconstruction as ui

    calls = []
    monkeypatch.setattr(ui, "reconstruct", lambda *args, **kwargs: calls.append(1) or reconstruct(*args, **kwargs))
    ui._reconstruction.clear()
    app = AppTest.from_string(VIEW_SCRIPT).run()
    assert not app.exception
    assert [image.proto.imgs[0].caption for image in app.get("image")] == [
        "Original",
        "Masked: what the encoder saw",
        "Reconstruction",
    ]
    assert "8 of 32 tokens visible" in app.caption[0].value
    app.run()  # a rerun (another widget moved) reads the cache
    assert calls == [1]
    app.session_state["none"] = True
    app.run()
    assert "MCG-NJU/videomae-base" in app.info[0].value


def test_at_bf16_the_figure_is_drawn_as_at_fp32_and_a_forced_out_of_memory_is_one_message(monkeypatch):
    from explorer.models.reducers import ParameterError

    model, decoder = small_pair()
    keep = np.array([0, 5, 9, 17, 30])
    full = reconstruct(textured_clip(), model, decoder, keep)
    half = reconstruct(textured_clip(), model, decoder, keep, precision="bf16")
    assert np.array_equal(half.masked, full.masked) and np.array_equal(half.visible, full.visible)
    assert abs(half.loss - full.loss) < 0.05 * full.loss
    assert np.abs(half.reconstruction.astype(int) - full.reconstruction).mean() < 3  # grey levels

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(decoder, "forward", out_of_memory)
    with pytest.raises(ParameterError, match="out of memory on the CPU for reconstructing 4 frames"):
        reconstruct(textured_clip(), model, decoder, keep)
    assert next(model.parameters()).device.type == "cpu"
