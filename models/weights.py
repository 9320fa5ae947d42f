"""Load VideoMAE checkpoints into `VideoViT`, whatever form they come in, without running code.

Files are read only with safetensors or `torch.load(weights_only=True)`. The format is
picked from keys only that format has, then one filter function per foreign format
renames the keys to ours with a flat table:

- "explorer": our own .safetensors, config (and class names) in its metadata;
- "videomae" / "videomae-pretrain": the official .pth files (weights under "model",
  "module", "state_dict" or at top level; pre-training ones prefix encoder. / decoder.);
- "huggingface" / "huggingface-pretrain": a transformers folder (config.json beside
  model.safetensors or pytorch_model.bin), or one such weights file with config.json.

`load_model` builds the encoder; `load_decoder` builds the pre-training decoder from the
same file (None when it has none), for reconstruction.

Official files do not record the head count or the input size: heads come from the
usual ViT width table (or the `num_heads` argument), the input is 16 x 224 x 224.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickletools
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config_checks import LIMITS, check_config, check_memory, read_small_file, regular_file
from .reducers.vtm import VTMSaliency
from .video_vit import VideoViT, VideoViTConfig
from .videomae_decoder import DecoderConfig, VideoMAEDecoder

HEADS_BY_WIDTH = {192: 3, 384: 6, 512: 8, 768: 12, 1024: 16, 1280: 16, 1408: 16}
# the official pre-training decoders (modeling_pretrain.py): small, base, large, huge
DECODER_HEADS_BY_WIDTH = {192: 3, 384: 6, 512: 8, 640: 8}
OFFICIAL_NORM_EPS = 1e-6
HF_FC_NORM_EPS = 1e-5  # transformers builds VideoMAE's fc_norm with LayerNorm's default eps
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_ACTIVATION = "gelu"  # timm's blocks use the exact GELU, which transformers calls "gelu"
SALIENCY_KEY = "vtm_saliency.u"
PRETRAIN_ONLY = ("decoder.", "encoder_to_decoder.", "mask_token")  # the decoder: load_model skips it
WRAPPER_PREFIXES = ("model.", "net.")  # Lightning modules hold the network as an attribute
# Lightning's hyper-parameter dicts, pickled beside the weights: plain dict subclasses, loaded as plain dicts
LIGHTNING_DICTS = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
)

# Hugging Face names, after the "videomae." prefix, to ours. q/k/v go to separate
# names first; `_fuse_qkv` then builds timm's fused qkv. Files on the Hub (and what
# transformers 5 writes) name the biases q_bias / v_bias; its modules call them
# query.bias / value.bias.
HF_TOP = {
    "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
    "layernorm.": "norm.",
    "fc_norm.": "fc_norm.",
    "classifier.": "head.",
}
HF_DECODER_TOP = {"decoder.norm.": "norm.", "decoder.head.": "head."}
HF_BLOCK = {
    "attention.attention.query.weight": "attn.q.weight",
    "attention.attention.key.weight": "attn.k.weight",
    "attention.attention.value.weight": "attn.v.weight",
    "attention.attention.query.bias": "attn.q_bias",
    "attention.attention.value.bias": "attn.v_bias",
    "attention.attention.q_bias": "attn.q_bias",
    "attention.attention.v_bias": "attn.v_bias",
    "attention.output.dense.": "attn.proj.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
    "layernorm_before.": "norm1.",
    "layernorm_after.": "norm2.",
}


class CheckpointError(ValueError):
    """A file that cannot be loaded as a video ViT; the message names file, key and shapes."""


def training_chain(record: dict | None) -> list[dict]:
    """A training record and those it nests, newest first: a run that went on from saved weights (train --init)
    keeps their record under "init_training"."""
    chain = []
    while record:
        chain.append(record)
        record = record.get("init_training")
    return chain


@dataclass
class LoadReport:
    source: str
    format: str  # "explorer" | "videomae" | "videomae-pretrain" | "huggingface" | "huggingface-pretrain"
    config: VideoViTConfig
    labels: list[str] | None
    missing: list[str]  # our keys the checkpoint did not provide
    unexpected: list[str]  # checkpoint keys (after renaming) we could not place
    ignored: list[str]  # the pre-training decoder's keys: not the encoder's; load_decoder reads them
    training: dict | None = None  # explorer files made by `python -m explorer train`: how they were trained

    def summary(self) -> str:
        c = self.config
        head = f"{c.num_classes} classes" if c.num_classes else "no classifier head"
        text = (
            f"{self.format} checkpoint {self.source}: ViT {c.embed_dim} wide, {c.depth} blocks, "
            f"{c.num_heads} heads, tubelet {c.tubelet}x{c.patch}x{c.patch}, {head}"
        )
        notes = [
            f"{len(keys)} {what} keys"
            for what, keys in (("missing", self.missing), ("unexpected", self.unexpected))
            if keys
        ]
        if self.training:
            chain = training_chain(self.training)
            t = chain[0]
            runs = f"{len(chain)} runs, " if len(chain) > 1 else ""
            steps = sum(run["settings"]["steps"] for run in chain)
            minutes = sum(run["train_seconds"] for run in chain) / 60
            validation = t.get("validation_accuracy")
            notes.append(
                f"trained with `python -m explorer train` ({runs}{steps} steps, {minutes:.1f} min on {t['device']}): "
                f"{t['held_out_accuracy']:.1%} on {t['held_out_clips']} held-out generated clips"
                + (f", {validation:.1%} on its training generator's validation clips" if validation is not None else "")
            )
        if self.ignored:
            notes.append(
                f"{len(self.ignored)} pre-training decoder keys ignored here "
                "(the decoder is loaded separately, for reconstruction)"
            )
        return text + ("; " + ", ".join(notes) if notes else "") + "."


def load_model(path: str | os.PathLike, *, num_heads: int | None = None) -> tuple[VideoViT, LoadReport]:
    """Build a VideoViT from a checkpoint file or Hugging Face folder; eval mode, float32, CPU.

    num_heads: attention heads, overriding the width table (official files do not say).
    """
    path = Path(path)
    state, meta, weights_file = _read_checkpoint(path)
    labels, ignored, training = None, [], None
    settings_file = weights_file  # where the settings came from, named when one is wrong
    if "explorer_config" in meta:
        fmt = "explorer"
        cfg, labels = _explorer_config(meta, weights_file)
        training = _training_record(meta, weights_file)
    else:
        fmt = _sniff(state, weights_file)
        if fmt.startswith("huggingface"):
            settings_file = weights_file.parent / "config.json"
            hf_config = _read_hf_config(settings_file)
            state, ignored = _from_huggingface(state, qv_bias=_qv_bias(hf_config, weights_file))
            cfg, labels = _config_from_hf(hf_config, state, weights_file)
        else:
            state, ignored = _from_videomae(state, weights_file)
            cfg = _infer_config(state, weights_file, num_heads)
    if num_heads is not None:
        cfg = replace(cfg, num_heads=num_heads)
    _checked(cfg, settings_file)
    labels = _check_labels(labels, cfg.num_classes, weights_file)
    model, missing, unexpected = _build(cfg, state, weights_file)
    report = LoadReport(str(path), fmt, cfg, labels, missing, unexpected, ignored, training)
    return model, report


def load_decoder(path: str | os.PathLike, *, num_heads: int | None = None) -> VideoMAEDecoder | None:
    """The VideoMAE pre-training decoder in a checkpoint file or Hugging Face folder; None if it has none.

    Eval mode, float32, CPU. Loading is strict: a decoder missing a weight, or with weights
    it has no place for, would paint noise, so either is a CheckpointError naming the keys.
    num_heads: decoder attention heads, overriding the width table (official files do not say).
    """
    path = Path(path)
    state, meta, weights_file = _read_checkpoint(path)
    if "explorer_config" in meta or not any(k.startswith(PRETRAIN_ONLY) for k in state):
        return None
    fmt = _sniff(state, weights_file)
    where = weights_file  # where the settings came from, named when one is wrong
    if fmt.startswith("huggingface"):
        where = weights_file.parent / "config.json"
        hf_config = _read_hf_config(where)
        state = _decoder_from_huggingface(state, qv_bias=_qv_bias(hf_config, weights_file))
        heads = "decoder_num_attention_heads"
        if num_heads is None and heads in hf_config:
            num_heads = _hf_value(hf_config, heads, int, where, limits=LIMITS["num_heads"])
        cfg = replace(
            _decoder_config(state, weights_file, num_heads),
            norm_eps=_hf_value(hf_config, "layer_norm_eps", float, where, default=1e-12, limits=LIMITS["norm_eps"]),
            head_norm_eps=1e-5,
            normalized_target=_hf_value(hf_config, "norm_pix_loss", bool, where, default=True),
        )
    else:
        state = _fuse_qkv({k.removeprefix("decoder."): v for k, v in state.items() if k.startswith(PRETRAIN_ONLY)})
        cfg = _decoder_config(state, weights_file, num_heads)
    _checked(cfg, where)
    decoder = VideoMAEDecoder(cfg)
    _check_shapes(decoder, state, weights_file)
    result = decoder.load_state_dict(state, strict=False)
    problems = [
        f"{what}: {', '.join(sorted(keys))}"
        for what, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{path}: the pre-training decoder does not load ({'; '.join(problems)})")
    return decoder.float().eval()


def native_img_size(path: str | os.PathLike) -> int | None:
    """The input size an explorer safetensors file was trained at, read from its metadata alone; None otherwise
    (and for a size out of range: load_model will name what is wrong with the file)."""
    path = Path(path)
    if not path.is_file() or not _looks_like_safetensors(path):
        return None
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        size = json.loads(meta["explorer_config"])["img_size"] if "explorer_config" in meta else None
    except (SafetensorError, KeyError, TypeError, ValueError):  # json's errors are ValueErrors
        return None
    low, high = LIMITS["img_size"]
    return size if type(size) is int and low <= size <= high else None


def save_weights(
    model: VideoViT, path: str | os.PathLike, labels: list[str] | None = None, training: dict | None = None
) -> None:
    """Write the explorer's format: our state dict as safetensors, config, labels and training record in metadata.

    A trained VTM saliency attached as `model.vtm_saliency` is part of the state dict, so it is saved too.
    """
    if labels is not None and len(labels) != model.cfg.num_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.cfg.num_classes} classes")
    meta = {"format": "pt", "explorer_config": json.dumps(model.cfg.to_dict())}
    if labels is not None:
        meta["labels"] = json.dumps(list(labels))
    if training is not None:
        meta["training"] = json.dumps(training)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.fspath(path), metadata=meta)


def download_videomae(repo_id: str, dest: str | os.PathLike) -> Path:
    """Fetch config.json and the weights of a Hub repo into `dest` (needs network): its .safetensors files, or
    pytorch_model.bin where it has none (read without running code, as every .bin is)."""
    from huggingface_hub import list_repo_files, snapshot_download  # only here: the app runs offline otherwise

    try:
        files = list_repo_files(repo_id)
        safetensors = any(name.endswith(".safetensors") for name in files)
        if not safetensors and "pytorch_model.bin" not in files:
            raise CheckpointError(f"{repo_id} has neither .safetensors weights nor a pytorch_model.bin to download")
        weights = "*.safetensors" if safetensors else "pytorch_model.bin"
        folder = Path(snapshot_download(repo_id, local_dir=dest, allow_patterns=["config.json", weights]))
    except CheckpointError:
        raise
    except ValueError as e:  # huggingface_hub's check of the id
        raise CheckpointError(f"{repo_id!r} is not a Hugging Face repo id: {_first_line(e)}") from e
    except OSError as e:  # its HTTP and offline errors are OSErrors
        raise CheckpointError(f"could not download {repo_id} (offline, or no such repo?): {_first_line(e)}") from e
    if not (folder / "config.json").exists() or not any(folder.glob(weights)):
        raise CheckpointError(f"{repo_id}: config.json and {weights} did not arrive in {folder}")
    return folder


# --- reading files -----------------------------------------------------------------------


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], Path]:
    """The tensors of a file or Hugging Face folder, its safetensors metadata, and the weights file read."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    weights_file = _hf_weights_file(path) if path.is_dir() else path
    try:
        regular_file(weights_file, str(weights_file))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    free = _memory_available()
    if weights_file.stat().st_size > free // 2:
        raise CheckpointError(
            f"{weights_file}: {weights_file.stat().st_size / 2**30:.1f} GiB of weights, more than half the "
            f"{free / 2**30:.1f} GiB free here"
        )
    state, meta = _read_tensors(weights_file)
    return _strip_wrapper(state), meta, weights_file


def _strip_wrapper(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the prefix a training wrapper adds to all of them: DDP's module., Lightning's model. (or net.)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def _memory_available() -> int:
    from explorer.runtime import memory_available  # not at the top: explorer.runtime imports the reducers

    return memory_available()


def _hf_weights_file(folder: Path) -> Path:
    if not (folder / "config.json").exists():
        raise CheckpointError(f"{folder}: a model folder needs config.json (the Hugging Face layout)")
    for name in HF_WEIGHT_FILES:
        if (folder / name).exists():
            return folder / name
    raise CheckpointError(f"{folder}: no {' or '.join(HF_WEIGHT_FILES)} in the folder")


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The flat tensor dict in the file, and safetensors metadata ({} for pickled files)."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    if _looks_like_safetensors(path):
        try:
            with safe_open(path, "pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
        except SafetensorError as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    return _unwrap(_torch_load(path), path), {}


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with the 8-byte length of a JSON header that fits in the file."""
    with open(path, "rb") as f:
        start = f.read(9)
    return len(start) == 9 and start[8:9] == b"{" and int.from_bytes(start[:8], "little") <= path.stat().st_size - 8


def _torch_load(path: Path) -> object:
    try:
        # MAE-style training scripts store their argparse namespace beside the weights
        allowed = [argparse.Namespace, *((dict, name) for name in LIGHTNING_DICTS)]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # on junk torch.load raises anything: EOFError, KeyError, UnpicklingError...
        imports = re.findall(r"GLOBAL (\S+)", str(e)) or _pickle_imports(path)
        if imports:
            raise CheckpointError(
                f"{path}: refused: the file would run code when loaded (it imports {imports[0]})"
            ) from e
        raise CheckpointError(f"{path}: not a checkpoint (neither safetensors nor a PyTorch file)") from e


def _pickle_imports(path: Path) -> list[str]:
    """What a well-formed raw pickle would import, found by decoding opcodes (nothing runs).

    torch's weights-only unpickler stops at the framing of pickle protocol 4+ before it
    reaches the import, so for those it cannot say why it refused.
    """
    imports, strings = [], []
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name == "GLOBAL":
                    imports.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    imports.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
    except ValueError:  # not a (complete) pickle
        return []
    return imports


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a training checkpoint (weights under "model", "module", ...)."""
    if isinstance(obj, dict):
        for key in ("model", "module", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, not a dict of tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: not a checkpoint (no tensors among keys {_first_keys(obj)})")
    for key, value in tensors.items():
        kind = _unusual_kind(value)
        if kind:
            raise CheckpointError(
                f"{path}: {key} is a {kind} tensor {tuple(value.shape)}; weights must be dense numbers"
            )
    return tensors


def _unusual_kind(tensor: torch.Tensor) -> str | None:
    """What makes a tensor unfit to copy into a parameter (sparse, quantized, on the meta device, complex)."""
    if tensor.layout != torch.strided:
        return str(tensor.layout).removeprefix("torch.")
    if tensor.is_quantized:
        return "quantized"
    if tensor.device.type != "cpu":
        return f"{tensor.device.type}-device"
    return "complex" if tensor.is_complex() else None


def _read_hf_config(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"{path.parent}: Hugging Face weights need their config.json beside them")
    try:
        config = json.loads(read_small_file(path, str(path)))
    except ValueError as e:  # json.JSONDecodeError is one
        raise CheckpointError(f"{path}: unreadable config ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: the config is a JSON {type(config).__name__}, not an object of settings")
    if config.get("model_type") != "videomae":
        raise CheckpointError(f"{path}: another architecture (model_type {config.get('model_type')!r}, not 'videomae')")
    return config


# --- formats -----------------------------------------------------------------------------


def _sniff(state: dict[str, torch.Tensor], path: Path) -> str:
    if {
        "videomae.embeddings.patch_embeddings.projection.weight",
        "embeddings.patch_embeddings.projection.weight",
    } & state.keys():
        return "huggingface-pretrain" if any(k.startswith("decoder.") for k in state) else "huggingface"
    if "encoder.patch_embed.proj.weight" in state:
        return "videomae-pretrain"
    if "patch_embed.proj.weight" in state:
        return "videomae"
    raise CheckpointError(f"{path}: another architecture (no video patch embedding; keys {_first_keys(state)})")


def _from_videomae(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official keys are ours already, but for pre-training's encoder. prefix, q_bias/v_bias and RLT's
    length embedding (a (1, T', D) parameter in its code; ours is an nn.Embedding's (T', D) weight)."""
    ignored = sorted(k for k in state if k.startswith(PRETRAIN_ONLY))
    state = {k.removeprefix("encoder."): v for k, v in state.items() if k not in ignored}
    length = state.pop("length_embed", None)
    if length is not None:
        if length.ndim != 2 and not (length.ndim == 3 and length.shape[0] == 1):
            raise CheckpointError(f"{path}: length_embed is {tuple(length.shape)}; RLT's is (1, T', D)")
        state["length_embed.weight"] = length.reshape(length.shape[-2:])
    return _fuse_qkv(state), ignored


def _from_huggingface(state: dict[str, torch.Tensor], qv_bias: bool) -> tuple[dict[str, torch.Tensor], list[str]]:
    """qv_bias: config.json's flag; without biases a zero qkv bias is exact."""
    ignored = sorted(k for k in state if k.startswith(PRETRAIN_ONLY))
    renamed = {}
    for key, value in state.items():
        if key in ignored:
            continue
        name = key.removeprefix("videomae.")
        block = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", name)
        if block:
            renamed[f"blocks.{block[1]}.{_rename(block[2], HF_BLOCK)}"] = value
        else:
            renamed[_rename(name, HF_TOP)] = value
    renamed = _fuse_qkv(renamed)
    if not qv_bias:
        for key in [k for k in renamed if k.endswith("attn.qkv.weight")]:
            renamed[key.replace("weight", "bias")] = renamed[key].new_zeros(renamed[key].shape[0])
    return renamed, ignored


def _decoder_from_huggingface(state: dict[str, torch.Tensor], qv_bias: bool) -> dict[str, torch.Tensor]:
    """transformers' decoder.decoder_layers.N... -> the decoder's blocks.N...; q/k/v fused as in the encoder."""
    renamed = {}
    for key, value in state.items():
        if not key.startswith(PRETRAIN_ONLY):
            continue
        block = re.fullmatch(r"decoder\.decoder_layers\.(\d+)\.(.+)", key)
        renamed[f"blocks.{block[1]}.{_rename(block[2], HF_BLOCK)}" if block else _rename(key, HF_DECODER_TOP)] = value
    renamed = _fuse_qkv(renamed)
    if not qv_bias:
        for key in [k for k in renamed if k.endswith("attn.qkv.weight")]:
            renamed[key.replace("weight", "bias")] = renamed[key].new_zeros(renamed[key].shape[0])
    return renamed


def _qv_bias(config: dict, path: Path) -> bool:
    """Whether q and v have biases: transformers 4.x configs say qkv_bias, others qv_bias (default: yes)."""
    key = "qkv_bias" if "qkv_bias" in config else "qv_bias"
    return _hf_value(config, key, bool, path.parent / "config.json", default=True)


def _rename(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return name  # left as is: reported as unexpected if it has no place


def _fuse_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separate q, k, v weights and q/v biases -> timm's fused qkv weight and bias.

    VideoMAE has no key bias; a zero one is exact, since it shifts all logits of a row
    equally (softmax ignores that).
    """
    state = dict(state)
    blocks = sorted({int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    for n in blocks:
        p = f"blocks.{n}.attn."
        if all(f"{p}{x}.weight" in state for x in "qkv"):
            state[f"{p}qkv.weight"] = torch.cat([state.pop(f"{p}{x}.weight") for x in "qkv"])
        if f"{p}q_bias" in state and f"{p}v_bias" in state:
            q, v = state.pop(f"{p}q_bias"), state.pop(f"{p}v_bias")
            state[f"{p}qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return state


# --- architecture ------------------------------------------------------------------------


def _json_meta(meta: dict[str, str], key: str, path: Path) -> object:
    try:
        return json.loads(meta[key]) if key in meta else None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: bad explorer metadata {key!r} ({e})") from e


def _training_record(meta: dict[str, str], path: Path) -> dict | None:
    """The training record `python -m explorer train` saves, with the fields LoadReport.summary reads."""
    record = _json_meta(meta, "training", path)
    if record is None:
        return None
    numbers = ("train_seconds", "held_out_accuracy", "held_out_clips")
    if not (
        isinstance(record, dict)
        and isinstance(record.get("settings"), dict)
        and _is_number(record["settings"].get("steps"))
        and all(_is_number(record.get(key)) for key in numbers)
        and isinstance(record.get("device"), str)
    ):
        raise CheckpointError(
            f"{path}: bad explorer metadata 'training' (it needs settings.steps, {', '.join(numbers)} and device; "
            f"got {json.dumps(record):.80})"
        )
    return record


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _explorer_config(meta: dict[str, str], path: Path) -> tuple[VideoViTConfig, list[str] | None]:
    try:
        settings = json.loads(meta["explorer_config"])
        if not isinstance(settings, dict):
            raise TypeError(f"explorer_config is a JSON {type(settings).__name__}, not an object")
        cfg = VideoViTConfig(**settings)
        labels = json.loads(meta["labels"]) if "labels" in meta else None
    except (json.JSONDecodeError, TypeError) as e:
        raise CheckpointError(f"{path}: bad explorer metadata ({e})") from e
    return cfg, labels


def _infer_config(state: dict[str, torch.Tensor], path: Path, num_heads: int | None) -> VideoViTConfig:
    """Shape of an official checkpoint, read from its tensors."""
    proj = state["patch_embed.proj.weight"]
    if proj.ndim != 5:
        raise CheckpointError(
            f"{path}: another architecture (patch_embed.proj.weight is {tuple(proj.shape)}; "
            "a video ViT has a 5-D Conv3d kernel)"
        )
    width, _, tubelet, patch, _ = proj.shape
    depth = 1 + max((int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    fc1 = _matrix(state, "blocks.0.mlp.fc1.weight", path)
    head = _matrix(state, "head.weight", path)
    length = _matrix(state, "length_embed.weight", path)
    mean = "fc_norm.weight" in state or "norm.weight" not in state
    default = VideoViTConfig()
    return VideoViTConfig(
        embed_dim=width,
        depth=depth,
        num_heads=num_heads if num_heads is not None else _heads(width, path),
        mlp_ratio=_mlp_ratio(fc1.shape[0], max(width, 1)) if fc1 is not None else default.mlp_ratio,
        num_classes=head.shape[0] if head is not None else 0,
        num_frames=length.shape[0] * tubelet if length is not None else default.num_frames,
        tubelet=tubelet,
        patch=patch,
        norm_eps=OFFICIAL_NORM_EPS,
        fc_norm=mean,
        length_embed=length is not None,
        # the official code classifies x[:, 0] after the norm when it has no fc_norm; an encoder alone is pooled
        pooling="first" if not mean and head is not None else "mean",
    )


def _decoder_config(state: dict[str, torch.Tensor], path: Path, num_heads: int | None) -> DecoderConfig:
    """Shape of a pre-training decoder, read from its tensors (in the decoder's own names); official eps."""
    to_decoder, head = _matrix(state, "encoder_to_decoder.weight", path), _matrix(state, "head.weight", path)
    if to_decoder is None or head is None:
        raise CheckpointError(
            f"{path}: the pre-training decoder is incomplete (it needs encoder_to_decoder.weight and the decoder head)"
        )
    width, encoder_width = to_decoder.shape
    depth = 1 + max((int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    fc1 = _matrix(state, "blocks.0.mlp.fc1.weight", path)
    if num_heads is None:
        if width not in DECODER_HEADS_BY_WIDTH:
            raise CheckpointError(
                f"{path}: cannot tell the decoder's attention heads for width {width}; give num_heads"
            )
        num_heads = DECODER_HEADS_BY_WIDTH[width]
    return DecoderConfig(
        encoder_dim=encoder_width,
        embed_dim=width,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=_mlp_ratio(fc1.shape[0], max(width, 1)) if fc1 is not None else DecoderConfig.mlp_ratio,
        out_dim=head.shape[0],
    )


def _matrix(state: dict[str, torch.Tensor], key: str, path: Path) -> torch.Tensor | None:
    """state[key], a 2-D tensor whose shape tells the network's, or None when absent."""
    value = state.get(key)
    if value is not None and value.ndim != 2:
        raise CheckpointError(f"{path}: {key} is {tuple(value.shape)}; it should be a matrix")
    return value


def _mlp_ratio(hidden: int, width: int) -> float:
    """The ratio for which timm's int(width * ratio) gives back `hidden` despite float rounding."""
    ratio = hidden / width
    return ratio if int(width * ratio) == hidden else (hidden + 0.5) / width


def _heads(width: int, path: Path) -> int:
    if width not in HEADS_BY_WIDTH:
        raise CheckpointError(f"{path}: cannot tell the number of attention heads for width {width}; give num_heads")
    return HEADS_BY_WIDTH[width]


def _config_from_hf(
    config: dict, state: dict[str, torch.Tensor], path: Path
) -> tuple[VideoViTConfig, list[str] | None]:
    """Shape from config.json (transformers' VideoMAEConfig fields, each checked for its type and range under
    its own name); classes from the weights."""
    where = path.parent / "config.json"
    head = _matrix(state, "head.weight", path)
    classes = head.shape[0] if head is not None else 0
    activation = config.get("hidden_act", HF_ACTIVATION)
    if activation != HF_ACTIVATION:
        raise CheckpointError(f"{where}: hidden_act {activation!r:.80} is not supported (the blocks use 'gelu')")
    width = _hf_value(config, "hidden_size", int, where, limits=LIMITS["embed_dim"])
    hidden = _hf_value(config, "intermediate_size", int, where, limits=(1, int(width * LIMITS["mlp_ratio"][1])))
    mean = _hf_value(config, "use_mean_pooling", bool, where, default=True)
    cfg = VideoViTConfig(
        embed_dim=width,
        depth=_hf_value(config, "num_hidden_layers", int, where, limits=LIMITS["depth"]),
        num_heads=_hf_value(config, "num_attention_heads", int, where, limits=LIMITS["num_heads"]),
        mlp_ratio=_mlp_ratio(hidden, width),
        num_classes=classes,
        num_frames=_hf_value(config, "num_frames", int, where, limits=LIMITS["num_frames"]),
        img_size=_hf_value(config, "image_size", int, where, limits=LIMITS["img_size"]),
        tubelet=_hf_value(config, "tubelet_size", int, where, limits=LIMITS["tubelet"]),
        patch=_hf_value(config, "patch_size", int, where, limits=LIMITS["patch"]),
        norm_eps=_hf_value(config, "layer_norm_eps", float, where, limits=LIMITS["norm_eps"]),
        fc_norm=mean,
        fc_norm_eps=HF_FC_NORM_EPS,
        pooling="mean" if mean else "first",
    )
    return cfg, _hf_labels(config.get("id2label", {}), classes, where)


def _hf_labels(id2label: object, classes: int, where: Path) -> list[str] | None:
    """Class names from id2label ({"0": "name", ...}); None when they are transformers' LABEL_n placeholders."""
    if id2label is None:
        return None
    if not isinstance(id2label, dict) or not all(
        re.fullmatch(r"\d+", key) and isinstance(name, str) for key, name in id2label.items()
    ):
        raise CheckpointError(f"{where}: id2label must map class numbers to names, got {id2label!r:.80}")
    labels = [id2label.get(str(i), "") for i in range(classes)]
    named = classes and all(label and not re.fullmatch(r"LABEL_\d+", label) for label in labels)
    return labels if named else None


def _hf_value(
    config: dict, key: str, kind: type, where: Path, default: object = None, limits: tuple | None = None
) -> Any:
    """config[key] of the given type and within limits (an int may be a [n, n] list, as image and patch sizes
    are written)."""
    if key not in config:
        if default is not None:
            return default
        raise CheckpointError(f"{where}: no {key} in the config")
    value = config[key]
    if kind is int and isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise CheckpointError(f"{where}: {key} must be a number or a list of equal numbers, got {value!r:.80}")
        value = value[0]
    fits = isinstance(value, bool) if kind is bool else isinstance(value, (int, float) if kind is float else int)
    if not fits or (kind is not bool and isinstance(value, bool)):
        wanted = {int: "a whole number", float: "a number", bool: "true or false"}[kind]
        raise CheckpointError(f"{where}: {key} must be {wanted}, got {value!r:.80}")
    if limits and not ((isinstance(value, int) or math.isfinite(value)) and limits[0] <= value <= limits[1]):
        raise CheckpointError(f"{where}: {key} must be between {limits[0]} and {limits[1]}, got {value!r:.80}")
    return value


def _checked(cfg: VideoViTConfig | DecoderConfig, path: Path) -> None:
    """Every field in range and the parameters within memory, before anything is allocated."""
    try:
        check_config(cfg)
        check_memory(cfg, _memory_available())
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _check_labels(labels: object, classes: int, path: Path) -> list[str] | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise CheckpointError(f"{path}: the labels must be a list of names, got a {type(labels).__name__}")
    if len(labels) != classes:
        raise CheckpointError(f"{path}: {len(labels)} labels for {classes} classes")
    return labels


def _build(cfg: VideoViTConfig, state: dict[str, torch.Tensor], path: Path) -> tuple[VideoViT, list[str], list[str]]:
    """The network of a checked config, with the checkpoint's tensors of fitting shapes loaded."""
    model = VideoViT(cfg)
    if SALIENCY_KEY in state:  # VTM's learnable saliency, trained with the model (explorer/train.py)
        model.vtm_saliency = VTMSaliency(cfg.depth, cfg.embed_dim // cfg.num_heads)
    _check_shapes(model, state, path)
    result = model.load_state_dict(state, strict=False)
    return model.float().eval(), sorted(result.missing_keys), sorted(result.unexpected_keys)


def _check_shapes(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = module.state_dict()
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        raise CheckpointError(f"{path}: shapes do not fit: " + "; ".join(wrong))


def _first_keys(mapping: dict, count: int = 4) -> str:
    keys = [str(k) for k in list(mapping)[:count]]
    return ", ".join(keys) + (", ..." if len(mapping) > count else "")


def _first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
