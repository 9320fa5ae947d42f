"""Count the places where a forward would wait for the GPU, on a machine without one.

On CUDA every host read of a device tensor (`.item()`, `.tolist()`, `int(t)`, `bool(t)`,
`nonzero`, boolean-mask indexing, `.cpu()`/`.numpy()`) blocks until the GPU has caught up.
`count_host_syncs` patches those entry points on torch.Tensor for the duration of a block and
counts the calls made on tensors, so the same count that `torch.cuda.set_sync_debug_mode`
would warn about on a GPU can be asserted in CI.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import torch

_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "cpu", "numpy")


@contextlib.contextmanager
def count_host_syncs() -> Iterator[Counter]:
    """Within the block, count host reads of tensors by kind ("item", "nonzero", "mask index", ...)."""
    counts: Counter = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in _METHODS}
    original_getitem, original_nonzero = torch.Tensor.__getitem__, torch.nonzero

    def counting(name):
        original = originals[name]

        def wrapper(self, *args, **kwargs):
            counts[name.strip("_")] += 1
            return original(self, *args, **kwargs)

        return wrapper

    def getitem(self, index):
        items = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items):
            counts["mask index"] += 1
        return original_getitem(self, index)

    def nonzero(*args, **kwargs):
        counts["nonzero"] += 1
        return original_nonzero(*args, **kwargs)

    try:
        for name in _METHODS:
            setattr(torch.Tensor, name, counting(name))
        torch.Tensor.__getitem__ = getitem
        torch.nonzero = nonzero
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        torch.Tensor.__getitem__ = original_getitem
        torch.nonzero = original_nonzero
