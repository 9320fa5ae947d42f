from dataclasses import replace

import numpy as np
import pytest
import torch

from explorer.models import engine
from explorer.models.video_vit import SIZES, VideoViT, sincos_table
from explorer.trace import Trace

CFG = replace(SIZES["tiny"], depth=2, num_classes=4, num_frames=4, img_size=32)


@pytest.fixture
def model() -> VideoViT:
    torch.manual_seed(0)
    return VideoViT(CFG).eval()


def test_sincos_table_is_videomaes():
    table = sincos_table(50, 6).numpy()
    for pos, j in [(0, 0), (7, 1), (13, 4), (49, 5)]:
        angle = pos / np.power(10000, 2 * (j // 2) / 6)
        assert table[pos, j] == pytest.approx(np.sin(angle) if j % 2 == 0 else np.cos(angle), abs=1e-6)


def test_embedding_a_subset_equals_the_conv_then_gather(model):
    video = torch.randn(2, 3, 4, 32, 32)
    full = model.patch_embed.proj(video).flatten(2).transpose(1, 2) + model.pos_embed
    keep = torch.tensor([[0, 3, 7], [1, 2, 6]])
    torch.testing.assert_close(model.embed(video), full)
    torch.testing.assert_close(model.embed(video, keep), torch.stack([full[0, keep[0]], full[1, keep[1]]]))


class Recorder(engine.BlockHooks):
    """Asks every block for its keys and weights and keeps what the run returns (not the model)."""

    def __init__(self):
        self.seen = []

    def asks(self, index):
        return {"keys": True, "weights": True}

    def after_block(self, index, x, attended):
        self.seen.append(attended)
        return x


def test_recorded_attention_gives_exactly_the_fused_output_and_rows_summing_to_one(model):
    video = torch.randn(1, 3, 4, 32, 32)
    recorder = Recorder()
    with torch.inference_mode():
        fused = model(video)
        recorded = model.forward_head(model.norm(engine.run_blocks(model.blocks, model.embed(video), recorder)))
    assert torch.equal(recorded, fused)  # recording computes the weights beside timm's own path
    weights = recorder.seen[1].weights
    assert weights.shape == (1, CFG.num_heads, 8, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, CFG.num_heads, 8))
    assert recorder.seen[1].keys.shape == (1, 8, CFG.embed_dim // CFG.num_heads)


def test_resize_input_rebuilds_the_positions(model):
    model.resize_input(8, 64)
    assert model.grid == (4, 4, 4) and model.pos_embed.shape == (64, CFG.embed_dim)
    assert model(torch.randn(1, 3, 8, 64, 64)).shape == (1, 4)
    with pytest.raises(ValueError, match="does not fit"):
        model(torch.randn(1, 3, 4, 32, 32))


def test_a_trace_refuses_owners_that_name_no_token():
    owner = np.zeros((2, 1, 2, 2), dtype=np.int32)
    owner[1, 0, 0, 0] = 3
    with pytest.raises(ValueError, match="layer 1"):
        Trace(
            grid=(1, 2, 2),
            cell=(2, 16, 16),
            owner=owner,
            tokens_per_layer=[1, 1],
            values={"cell": [np.array([0]), np.array([0])]},
            flops=np.ones(2),
            dense_flops=np.ones(2),
            seconds={},
        )
