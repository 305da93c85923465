"""Peak memory of a forward pass, found without running it: the pass is traced on PyTorch's meta
device (shapes and dtypes, no data, no arithmetic) and the bytes of the tensors alive after each
operator are added up. The figure covers the tensors the pass creates, not the weights, nor the
scratch space kernels take for themselves (:mod:`edgestereo.runtime.memory` allows for that)."""

from __future__ import annotations

import copy
import itertools
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["traced_peak_bytes"]


class _LiveBytes(TorchDispatchMode):
    """Bytes of the tensors the traced operators created that are still referenced, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._keys = itertools.count()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func.is_view or func._schema.is_mutable:  # a view or an in-place result holds no new memory
            return out
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                key = next(self._keys)
                self._sizes[key] = tensor.untyped_storage().nbytes()
                self.live += self._sizes[key]
                self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._release, key)
        return out

    def _release(self, key: int) -> None:
        self.live -= self._sizes.pop(key)


def traced_peak_bytes(module: nn.Module, *shapes: tuple[int, ...]) -> int:
    """Peak bytes of the tensors ``module(*inputs)`` creates, for float32 inputs of ``shapes``.

    >>> traced_peak_bytes(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 64, 64))
    131072
    """
    inputs = tuple(torch.empty(shape, device="meta") for shape in shapes)
    with torch.inference_mode(), _LiveBytes() as live:
        _on_meta(module)(*inputs)
    return live.peak


def _on_meta(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose weights and buffers live on the meta device (nothing is copied; a
    tensor registered under two names stays one tensor)."""
    memo: dict[int, Any] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    return copy.deepcopy(module, memo)
