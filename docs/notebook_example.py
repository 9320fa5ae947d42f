# %% [markdown]
# # Token Reduction Explorer in a notebook
#
# Each `# %%` marks a cell: open this file in Jupyter (jupytext), VS Code or Spyder and run the
# cells one by one, or run it whole from the repository root with
# `PYTHONPATH=. python docs/notebook_example.py [OUT]` (or after `pip install .`). It analyzes the
# bundled sample clip with the shipped demo model under two reducers at a budget of half the
# tokens, saves a trace, loads it back (numpy alone could do that part), and writes the inline
# view of the trace to OUT/trace.html (OUT: `notebook_out` by default).

# %%
import sys
from pathlib import Path

import explorer
from explorer import ModelSpec, Trace, analyze, build_model, load_clip, make_reducer

# a script's one argument; a Jupyter kernel's own arguments (-f kernel.json) are not a folder
out = Path(sys.argv[1] if len(sys.argv) == 2 and "ipykernel" not in sys.modules else "notebook_out")

# %% The bundled sample, sampled for the demo model, and the model (16 frames of 112 px)
model, report = build_model(ModelSpec())
clip = load_clip(
    explorer.video.sample_path("Still and moving (generated)"),
    frames=model.cfg.num_frames,
    stride=4,
    size=model.cfg.img_size,
)
print(f"clip: {clip.num_frames} frames of {clip.frames.shape[1]} px from {clip.source}")

# %% Two reducers at a budget of half the tokens
run = dict(device="cpu", labels=report.labels if report else None, model_name=ModelSpec().describe())
traces = {name: analyze(clip, model, make_reducer(name, budget=0.5), **run) for name in ("rlt", "tome")}
for name, trace in traces.items():
    print(f"{name}: tokens per layer {trace.tokens_per_layer}")
    for guess in trace.top_k(5):
        print(f"  {guess['label']}: {guess['probability']:.3f}")

# %% Save one trace and read it back: summary.json + trace.npz
folder = traces["tome"].save(out / "tome")
back = Trace.load(folder)
print(f"loaded {folder}: schema version {explorer.trace.SCHEMA_VERSION}, tokens per layer {back.tokens_per_layer}")
size = back.value_info("size")
print(f"value 'size': {size.label if size else 'not described'} ({size.kind if size else '-'})")

# %% The inline view: in Jupyter, `back` alone as a cell's last line shows it, `back.show(clip)` draws on the frames
page = back._repr_html_()
(out / "trace.html").write_text(f"<!doctype html><meta charset='utf-8'><body>{page}</body>")
print(f"wrote {out / 'trace.html'} ({len(page)} characters)")
