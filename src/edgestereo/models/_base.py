"""The one model contract every stereo network in edgestereo follows.

``model(left, right)``: float RGB ``(B,3,H,W)`` in [0,255] → disparity ``(B,1,H,W)`` in pixels of
the input resolution. Normalisation lives inside the model, so every runtime feeds the same tensor.
H and W must be multiples of ``model.divisor`` (:class:`~edgestereo.runtime.padding.InputPadder`
pads and crops back). ``forward_train`` may return several predictions for the loss.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._checkpoint import Checkpoint

__all__ = ["StereoModel", "TrainingLoss", "build_config", "check_stereo_inputs", "left_predictions"]


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (bool is no int, an int is a float, a list
    may stand for a tuple); annotations it does not know are left to the family's own checks."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args))
    if hint in (int, float):  # NumPy scalars count too
        return isinstance(value, numbers.Real if hint is float else numbers.Integral) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def build_config(base: Any, overrides: Mapping[str, Any]) -> Any:
    """``dataclasses.replace(base, **overrides)`` with an error that names unknown keys and values of
    the wrong type; lists (from JSON, YAML or the command line) become tuples, since configs are frozen."""
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise EdgeStereoError(
            f"unknown option(s) {', '.join(unknown)} for {type(base).__name__}; "
            f"known: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(type(base))
    for key, value in overrides.items():
        if not _matches(value, hints[key]):
            raise EdgeStereoError(f"{key}={value!r}: {type(base).__name__}.{key} is {fields[key].type}, "
                                  f"e.g. {key}={getattr(base, key)!r}")
    return dataclasses.replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


@dataclass(frozen=True)
class TrainingLoss:
    """The loss a family was published with, named by import path so that ``models`` never imports
    ``training`` (which imports Lightning): ``target`` is "package.module:Name", a callable that takes
    ``options`` and ``max_disp`` (px) as keywords and returns the loss.

    >>> TrainingLoss("edgestereo.training.losses:SequenceLoss", {"gamma": 0.9}).target
    'edgestereo.training.losses:SequenceLoss'
    """

    target: str
    options: Mapping[str, Any] = field(default_factory=dict)


def left_predictions(outputs: Any) -> list[Tensor]:
    """The left-view predictions of ``forward_train`` outputs, coarse to fine: a tensor, a list of
    tensors, or a dict with a ``left`` entry (families that also predict the right view or return
    candidate distributions)."""
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        if "left" not in outputs:
            raise EdgeStereoError(f"forward_train returned a dict without 'left' (keys: {', '.join(outputs)})")
        return left_predictions(outputs["left"])
    return list(outputs)


def check_stereo_inputs(left: Tensor, right: Tensor, divisor: int = 1) -> None:
    """Raise if ``left``/``right`` are not matching (B,3,H,W) tensors with H, W divisible by ``divisor``."""
    if left.dim() != 4 or left.shape[1] != 3:
        raise EdgeStereoError(f"expected left of shape (B,3,H,W), got {tuple(left.shape)}")
    if left.shape != right.shape:
        raise EdgeStereoError(f"left {tuple(left.shape)} and right {tuple(right.shape)} shapes differ")
    h, w = left.shape[-2:]
    if h % divisor or w % divisor:
        raise EdgeStereoError(f"input size {h}x{w} is not a multiple of {divisor}; pad with InputPadder")


class StereoModel(nn.Module):
    """Base class of every registered model.

    Subclasses set ``divisor`` (H and W must be multiples of it), ``config`` (a frozen dataclass)
    and implement :meth:`forward`. Deploy-time op switches are found by :meth:`deploy` on any
    sub-module with a ``switch_to_deploy(enabled)`` method; the ``state_dict`` never changes.
    """

    divisor: int = 1
    #: False for models that are not ONNX-exportable networks (the classical SGBM baseline).
    exportable: ClassVar[bool] = True
    #: False for a classical method that has no weights to load (the applications then need none).
    has_weights: ClassVar[bool] = True
    #: the family's published training loss (:func:`edgestereo.training.losses.published_loss`).
    training_loss: ClassVar[TrainingLoss | None] = None
    #: plain objects a family's published checkpoints pickle beside their tensors (``weights_only``
    #: loading is extended by exactly these).
    checkpoint_safe_globals: ClassVar[tuple[Any, ...]] = ()
    #: the registry name, set by ``create_model``.
    model_name: str = ""
    config: Any = None

    def __init__(self) -> None:
        super().__init__()
        self._deploy_mode = False

    @property
    def is_deploy(self) -> bool:
        """Whether the deploy (export-safe) path is active."""
        return self._deploy_mode

    def deploy(self, enabled: bool = True) -> StereoModel:
        """Switch every op with a deploy twin to its export-safe path (same weights). Returns self."""
        for module in self.modules():
            switch = getattr(module, "switch_to_deploy", None)
            if module is not self and callable(switch):
                switch(enabled)
        self._deploy_mode = enabled
        return self

    @classmethod
    def adapt_checkpoint(cls, checkpoint: Checkpoint, base: Any, config: dict[str, Any]
                         ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The family's checkpoint adapter: ``checkpoint`` (a read weights file), the variant's
        default config ``base`` and the requested ``config`` fields (the file's, then the user's) →
        the state dict to load and the config fields to build with. The default takes both as they are;
        a family overrides it to map keys, read the architecture from the file or refuse a mismatch."""
        del base
        return checkpoint.state_dict, config

    def export_uses_deploy(self, profile: str) -> bool:
        """Whether ONNX export for ``profile`` ("tensorrt", "generic") traces the deploy path.

        ``npu4d`` always takes the export-safe deploy path. TensorRT and ONNX Runtime run the
        reference ops (GridSample, 5-D volumes) natively, so by default they keep the reference
        path; a family overrides this when its deploy path is also the better graph there.
        """
        return profile == "npu4d"

    def inference_bytes(self, height: int, width: int) -> int:
        """Peak bytes the tensors of one forward pass of a (1,3,height,width) pair take (H and W
        multiples of ``divisor``; the weights not counted), found by tracing the pass on the meta
        device without running it. A family whose forward cannot be traced (it leaves PyTorch) says
        so by overriding this."""
        from edgestereo.models._memory import traced_peak_bytes

        return traced_peak_bytes(self, (1, 3, height, width), (1, 3, height, width))

    def forward(self, left: Tensor, right: Tensor) -> Tensor:  # pragma: no cover - abstract
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) pixels."""
        raise NotImplementedError

    def forward_train(self, left: Tensor, right: Tensor) -> list[Tensor] | dict[str, Any]:
        """Predictions for the training loss; by default the single output of :meth:`forward`."""
        return [self(left, right)]

    @torch.no_grad()
    def example_inputs(self, height: int, width: int, batch: int = 1) -> tuple[Tensor, Tensor]:
        """Random-texture RGB pair (B,3,H,W) in [0,255] of a valid size, on the model's device (for export,
        parity and benchmarks): two fronto-parallel planes, 4 px disparity in the top half and 12 px in
        the bottom half (wrapping at the right border), so a network that matches gives a varied output."""
        device = next(self.parameters(), torch.empty(0)).device
        generator = torch.Generator().manual_seed(0)
        left = torch.rand(batch, 3, height, width, generator=generator) * 255
        top, bottom = left[..., : height // 2, :], left[..., height // 2 :, :]
        right = torch.cat([torch.roll(top, shifts=-4, dims=-1), torch.roll(bottom, shifts=-12, dims=-1)], dim=-2)
        return left.to(device), right.to(device)
