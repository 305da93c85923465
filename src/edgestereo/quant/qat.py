"""Quantization-aware training (QAT) with torchao's PT2E flow.

Why this path: ``torch.ao.quantization`` (eager and FX modes) is deprecated upstream and the PT2E
entry points left PyTorch for torchao (``torch.ao.quantization.quantize_pt2e`` is gone from torch
2.13). torchao's ``prepare_qat_pt2e`` works on a ``torch.export`` graph, fuses Conv+BN for
training, and with the x86 quantizer inserts the scheme ``edgestereo quantize --per-channel``
writes: int8 symmetric per-channel weights, uint8 asymmetric per-tensor activations.

The variants of the precision table, as the StereoNetPlus reference runs them:

1. float: the network in PyTorch;
2. calibrated: fake quantization in PyTorch with ranges observed on calibration pairs;
3. QAT: the same after fine-tuning under fake quantization (the float weights learn to live with it);
4. int8: the fine-tuned weights exported to ONNX and quantized to QDQ by ONNX Runtime (per
   channel, uint8 activations, ranges re-calibrated on the calibration pairs: the QAT graph and
   the ONNX graph name their tensors differently, so observer ranges are not carried across).

The training graph is exported with the batch dimension dynamic and H, W fixed (training crops are).
``edgestereo train`` runs it with ``model.quant: qat`` (:class:`~edgestereo.training.StereoLitModule`);
:mod:`edgestereo.evaluation.precision_table` prints the precision table.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models._base import StereoModel, left_predictions

__all__ = ["TORCHAO_VERSION", "QATModel"]

#: the torchao release the QAT path is tested with (pyproject extra ``quant``).
TORCHAO_VERSION = "0.18.0"


def _torchao() -> Any:
    """Import torchao's PT2E API; a clear error when the ``quant`` extra is not installed."""
    # torchao logs a warning per optional CUDA kernel library it cannot load on a CPU build
    logger = logging.getLogger("torchao")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e as pt2e
        from torchao.quantization.pt2e import quantize_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError:
        raise EdgeStereoError(f"quantization-aware training needs torchao (pip install 'edgestereo[quant]', "
                              f"torchao=={TORCHAO_VERSION})") from None
    finally:
        logger.setLevel(level)
    return pt2e, quantize_pt2e, x86_inductor_quantizer


class _TrainForward(nn.Module):
    """``forward_train`` as a plain forward, for ``torch.export``: a list of predictions as a tuple, a
    dict (``left`` predictions, ``distributions`` as (tensor, stride) pairs) as it is; torch.export
    keeps the structure and its int leaves."""

    def __init__(self, model: StereoModel) -> None:
        super().__init__()
        self.net = model

    def forward(self, left: Tensor, right: Tensor) -> tuple[Tensor, ...] | dict[str, Any]:
        outputs = self.net.forward_train(left, right)
        if isinstance(outputs, dict):
            return outputs
        if not isinstance(outputs, (list, tuple)):
            raise EdgeStereoError(f"{self.net.model_name}: forward_train returns {type(outputs).__name__}; QAT "
                                  "needs a list or a dict of predictions")
        return tuple(outputs)


class QATModel(nn.Module):
    """``model``'s training forward with int8 fake quantization inserted (torchao PT2E, x86 scheme).

    height, width: the fixed training size (multiples of ``model.divisor``); the batch may vary.
    The deploy path is traced (the graph that is exported and quantized later). The graph holds
    ``model``'s parameters and buffers under ``net.``; :meth:`write_back` copies its current state
    (BatchNorm statistics included, which a device move gives the graph its own copies of) into
    ``model`` for export. freeze_bn: BatchNorm keeps its running statistics in training too.
    In eval mode BatchNorm uses its running statistics and the observers stop, so evaluating never
    moves the ranges; in train mode the observers follow the activations (moving averages).

    >>> qat = QATModel(create_model("stereonet-plus"), 256, 512)   # doctest: +SKIP
    >>> qat.calibrate(pairs); loss = criterion(qat.forward_train(left, right), batch)  # doctest: +SKIP
    """

    def __init__(self, model: StereoModel, height: int, width: int, *, freeze_bn: bool = False) -> None:
        super().__init__()
        if not model.exportable:
            raise EdgeStereoError(f"{model.model_name or type(model).__name__} is not a network; nothing to quantize")
        if height % model.divisor or width % model.divisor:
            raise EdgeStereoError(f"QAT size {width}x{height} is not a multiple of {model.divisor}")
        _check_batchnorm_scales(model)
        pt2e, quantize_pt2e, x86 = _torchao()
        self._pt2e = pt2e
        self.input_size = (height, width)
        self.freeze_bn = freeze_bn
        # kept outside the module tree: its tensors are the graph's (``net.*``), not a second copy to train
        self.__dict__["float_model"] = model
        #: set by :meth:`calibrate`; saved with the state dict, so a resumed run does not calibrate again
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        was_training = model.training
        model.deploy().train()
        left, right = model.example_inputs(height, width, batch=2)
        batch = torch.export.Dim("batch", min=1, max=1024)
        try:
            exported = torch.export.export(_TrainForward(model), (left, right), dynamic_shapes=({0: batch}, {0: batch}))
            quantizer = x86.X86InductorQuantizer()
            quantizer.set_global(x86.get_default_x86_inductor_quantization_config(is_qat=True))
            self.graph = quantize_pt2e.prepare_qat_pt2e(exported.module(), quantizer)
        except (ValueError, RuntimeError, AssertionError) as exc:  # torch.export's and the quantizer's refusals
            raise EdgeStereoError(_refusal(model, exc)) from None
        finally:
            model.train(was_training)
        # Both forms of the graph are made once and swapped by train()/eval(): torchao's own
        # switch rewrites every BatchNorm pattern again each time (seconds per validation).
        self._train_graph = copy.deepcopy(self.graph.graph)
        pt2e.move_exported_model_to_eval(self.graph)
        self._eval_graph = _without_batch_counting(self.graph.graph)
        self.train()

    def train(self, mode: bool = True) -> QATModel:
        """Train mode: batch statistics (unless ``freeze_bn``) and observers on; eval mode: running
        statistics and observers off."""
        self.training = mode
        # torchao makes the prepared graph refuse .train()/.eval(); its sub-modules take the flag as usual
        nn.Module.train(self.graph, mode)
        graph = self._train_graph if mode and not self.freeze_bn else self._eval_graph
        if self.graph.graph is not graph:
            self.graph.graph = graph  # the setter regenerates the forward code
        self.graph.apply(self._pt2e.enable_observer if mode else self._pt2e.disable_observer)
        return self

    def forward_train(self, left: Tensor, right: Tensor) -> Any:
        """left, right (B,3,H,W) in [0,255] → the model's ``forward_train`` outputs (the same structure:
        a list of predictions, or a dict) under fake quantization."""
        h, w = self.input_size
        if tuple(left.shape[-2:]) != (h, w):
            raise EdgeStereoError(f"QAT graph takes {w}x{h} crops, got {left.shape[-1]}x{left.shape[-2]}")
        outputs = self.graph(left, right)
        return outputs if isinstance(outputs, dict) else list(outputs)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """The final (full-resolution) disparity (B,1,H,W) px under fake quantization."""
        return left_predictions(self.forward_train(left, right))[-1]

    @torch.no_grad()
    def calibrate(self, pairs: Iterable[tuple[Tensor, Tensor]]) -> int:
        """Observe activation ranges on (left, right) batches with fake quantization off and
        BatchNorm frozen, then switch fake quantization on: QAT starts from calibrated ranges.
        Returns the number of batches seen."""
        was_training = self.training
        self.eval()
        self.graph.apply(self._pt2e.disable_fake_quant)
        self.graph.apply(self._pt2e.enable_observer)
        count = 0
        for left, right in pairs:
            self.graph(left, right)
            count += 1
        self.graph.apply(self._pt2e.enable_fake_quant)
        self.train(was_training)
        if count == 0:
            raise EdgeStereoError("no calibration batch for QAT")
        self.calibrated.fill_(True)
        return count

    def write_back(self) -> StereoModel:
        """Copy the trained weights and BatchNorm statistics into the float model and return it."""
        model: StereoModel = self.__dict__["float_model"]
        prefix = "net."
        state = {k[len(prefix):]: v for k, v in self.graph.state_dict().items() if k.startswith(prefix)}
        missing = sorted(set(model.state_dict()) - set(state))
        if missing:
            raise EdgeStereoError(f"QAT graph lost parameters {', '.join(missing[:5])}; cannot export it")
        model.load_state_dict({k: state[k] for k in model.state_dict()})
        return model


def _check_batchnorm_scales(model: StereoModel) -> None:
    """Refuse BatchNorm scales that are exactly zero: the QAT graph folds each BatchNorm into the
    convolution before it and divides the convolution's output by the scale (0/0 gives NaN ranges).
    Networks that zero-initialise residual branches have them until they are trained."""
    zero = [name for name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None
            and bool((module.weight == 0).any())]
    if zero:
        raise EdgeStereoError(f"{model.model_name or type(model).__name__}: {len(zero)} BatchNorm layer(s) have a "
                              f"scale of exactly 0 ({', '.join(zero[:3])}{' …' if len(zero) > 3 else ''}), which "
                              "QAT's convolution + BatchNorm folding divides by; start QAT from trained weights")


def _without_batch_counting(graph: torch.fx.Graph) -> torch.fx.Graph:
    """``graph`` without its in-place ``num_batches_tracked += 1``: torchao's eval rewrite keeps the
    training graph's counters, and evaluating must not count batches (BatchNorm in eval mode does not)."""
    for node in list(graph.nodes):
        target = node.args[0] if node.op == "call_function" and node.target is torch.ops.aten.add_.Tensor else None
        if isinstance(target, torch.fx.Node) and target.op == "get_attr" and \
                str(target.target).endswith("num_batches_tracked") and not node.users:
            graph.erase_node(node)
    return graph


def _refusal(model: StereoModel, exc: BaseException) -> str:
    """One line for torch.export's or the x86 quantizer's refusal of ``model``."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    hint = ""
    if "more than one output node" in first:
        # the quantizer annotates each convolution once: a module called twice (a feature extractor
        # applied to each view in turn) gives its weight two consumers
        hint = ("; a convolution is called more than once (e.g. a shared feature extractor run on each view "
                "separately): run it once on the views stacked as one batch")
    return f"{model.model_name or type(model).__name__}: torchao cannot prepare this graph for QAT ({first}){hint}"
