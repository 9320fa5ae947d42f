"""No reducer makes a forward wait for the device: nothing inside the block loop reads a tensor on the host.

On a GPU each such read (`.item()`, `.tolist()`, `bool(t)`, `nonzero`, boolean-mask indexing)
stalls the pipeline and skews the measured time; tests/host_syncs.py counts them on the CPU.
"""

from dataclasses import replace

import pytest
import torch

from explorer.models import engine
from explorer.models.packed import pack
from explorer.models.reducers import REDUCERS, make_reducer
from explorer.models.video_vit import SIZES, VideoViT, normalize_video
from tests.clips import make_clip, moving_square_frames
from tests.host_syncs import count_host_syncs

CFG = replace(SIZES["tiny"], embed_dim=64, depth=12, num_heads=2, num_classes=5, num_frames=16, img_size=112)
VARIANTS = [(name, {}) for name in REDUCERS] + [
    ("vtm", {"targets": t}) for t in ("naive", "region", "boundary", "learnable")
]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = VideoViT(CFG).eval()
    video = normalize_video(torch.from_numpy(make_clip(moving_square_frames(frames=16, size=112, row=3)).frames))
    return model, video


def test_the_counter_sees_host_reads():
    x = torch.arange(6)
    with count_host_syncs() as counts:
        x.sum().item(), x.tolist(), bool(x[0]), x[x > 2], torch.nonzero(x)
    assert counts == {"item": 1, "tolist": 1, "bool": 1, "mask index": 1, "nonzero": 1}


@pytest.mark.parametrize("name, params", VARIANTS, ids=[f"{n}-{p.get('targets', '')}" for n, p in VARIANTS])
def test_a_timed_forward_reads_nothing_back(setup, name, params):
    model, video = setup
    reducer = make_reducer(name, **params)
    network = engine.network_for(reducer, CFG.num_frames, CFG.img_size, CFG.num_classes)
    with torch.inference_mode():
        if network is not None:
            with count_host_syncs() as counts:
                network.eval()(video[None])
        else:
            selection = engine.prepare(reducer, video, model)  # before the clock, as analyze and bench do
            with count_host_syncs() as counts:
                engine.run_clip(model, video[None], selection, reducer)
    assert sum(counts.values()) == 0, dict(counts)


def test_a_packed_batch_reads_nothing_back(setup):
    model, video = setup
    reducer = make_reducer("rlt")
    videos = torch.stack([video, video.flip(1)])
    selections = [engine.prepare(reducer, v, model) for v in videos]
    with torch.inference_mode():
        packed = pack(model, videos, selections)
        with count_host_syncs() as counts:
            engine.forward_packed(model, packed)
    assert sum(counts.values()) == 0, dict(counts)
