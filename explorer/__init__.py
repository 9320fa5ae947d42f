"""Token Reduction Explorer: see what token reduction does inside video transformers.

Python API (the app and the CLI use the same calls):

    from explorer import load_clip, build_model, analyze, make_reducer, ModelSpec, Trace
    clip = load_clip("video.mp4", frames=16, stride=4, size=224)
    model, report = build_model(ModelSpec(size="small"), clip.num_frames, 224)
    trace = analyze(clip, model, make_reducer("rlt", tau=0.1))
    trace.tokens_per_layer, trace.owner, trace.values["run_length"], trace.top_k(5)
    merged = analyze(clip, model, make_reducer("tome", budget=0.5), saliency=SaliencySpec("max"))
    trace.save("out/")            # summary.json + trace.npz; Trace.load("out/") reads them back
"""
from explorer.models.reducers import REDUCERS, make_reducer

from .analyze import ModelSpec, analyze, build_model
from .saliency import SaliencySpec
from .trace import Trace
from .video import Clip, load_clip

__all__ = ["REDUCERS", "Clip", "ModelSpec", "SaliencySpec", "Trace", "analyze", "build_model", "load_clip", "make_reducer"]
