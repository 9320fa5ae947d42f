"""Where and how a forward runs: the device, the precision, waiting for the device, running out of memory.

One policy for every entry point (analyze, bench, accuracy, reconstruction, train, the app):
- device: "auto" (the GPU when there is one), "cpu" or "cuda";
- precision: "auto" (bf16 on a GPU that supports it, else fp16; fp32 on the CPU), "fp32",
  "bf16" or "fp16". The forward runs under autocast on whichever device is chosen, so bf16
  also runs on the CPU (the way CI exercises the GPU's code path);
- out of memory: CUDA, cuBLAS, cuDNN and CPU allocation failures are all recognised and end in
  one clear message naming what was asked for; the shared, cached model is never moved to
  recover (a fallback runs on a copy).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator

import torch
from torch import nn

from explorer.models.reducers import ParameterError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_OUT_OF_MEMORY = (
    "out of memory",
    "can't allocate memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_INITIALIZED",
    "failed to allocate",
)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' was asked for, but PyTorch sees no GPU here (use auto or cpu)")
    if device not in DEVICES:
        raise ParameterError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses: "auto" becomes bf16 on a GPU that supports it (fp16 on one that does not) and
    fp32 on the CPU; bf16 asked of a GPU without it is refused by name."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = device.type == "cuda"
    if precision == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ParameterError("this GPU does not support bf16: use fp16 or fp32")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision on the device; fp32 runs as is."""
    return torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32")


def synchronize(device: torch.device) -> None:
    """Wait for the device to finish its queued work (timings); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocation failure: PyTorch's, Python's, or one cuBLAS/cuDNN raise as RuntimeError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(sign in str(error) for sign in _OUT_OF_MEMORY)


def memory_message(what: str, device: torch.device, advice: str) -> str:
    """One line: what ran out of memory where, what is free, and what would fit."""
    free = ""
    if device.type == "cuda":
        with contextlib.suppress(RuntimeError):
            available, total = torch.cuda.mem_get_info(device)
            free = f" ({available / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
    return f"out of memory on the {'GPU' if device.type == 'cuda' else 'CPU'}{free} for {what}: {advice}"


@contextlib.contextmanager
def memory_guard(what: str, device: torch.device, advice: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into one clear ParameterError; other errors pass."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
        if not out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ParameterError(memory_message(what, device, advice)) from None


def memory_available() -> int:
    """Bytes of memory this machine has free now (Linux's MemAvailable; the total where that cannot be read)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(what: str, needed: int, advice: str) -> None:
    """Refuse, before allocating, what would need more than half the free memory; the message names both."""
    free = memory_available()
    if needed > free // 2:
        raise ParameterError(
            f"{what} would need about {needed / 2**30:.1f} GiB, and this machine has {free / 2**30:.1f} GiB "
            f"free (at most half is used): {advice}"
        )


def copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of the model on the device, made without moving the original (which others may be running)."""
    memo: dict[int, object] = {}
    for tensor in model.parameters():
        memo[id(tensor)] = nn.Parameter(tensor.detach().to(device), requires_grad=tensor.requires_grad)
    for tensor in model.buffers():
        memo[id(tensor)] = tensor.detach().to(device)
    return copy.deepcopy(model, memo)
