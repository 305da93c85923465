"""The LightningModule that trains any registered model with its published loss (or the
self-supervised objective), AdamW + one-cycle, frozen BatchNorm on request, and validation
metrics (EPE, bad-1, bad-3, D1) with a picture grid per validation.

The network stays a plain :class:`~edgestereo.models.StereoModel` in ``self.model``; its weights
are ``model.*`` in Lightning checkpoints and :func:`edgestereo.training.export_weights` writes them
as safetensors that :func:`edgestereo.load_model` reads. With ``quant="qat"`` the network trains and
validates through int8 fake quantization (:class:`~edgestereo.quant.qat.QATModel`, ``qat.*`` in
checkpoints), and its float weights are written back into ``self.model`` whenever they are saved.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.models._base import left_predictions
from edgestereo.models._checkpoint import NETWORK_KEY
from edgestereo.runtime.padding import InputPadder
from edgestereo.training.losses import (
    SelfSupervisedLoss,
    loss_mask,
    masked_mean,
    published_loss,
    reconstruction_cost,
    zncc_cost,
)

if TYPE_CHECKING:
    from edgestereo.models import StereoModel
    from edgestereo.quant.qat import QATModel

__all__ = ["DEFAULT_TRAIN_MODEL", "StereoLitModule", "validation_grid"]

#: what `edgestereo train` trains when no model is named: the real-time default.
DEFAULT_TRAIN_MODEL = "stereonet-plus"
#: thresholds (px) of the bad-τ rates logged each validation.
_VAL_THRESHOLDS = (1.0, 3.0)


def _flip(tensor: Tensor) -> Tensor:
    return torch.flip(tensor, dims=[-1])


def validation_grid(left: Tensor, prediction: Tensor, gt: Tensor, valid: Tensor, max_error: float = 5.0) -> np.ndarray:
    """Rows of left | prediction | ground truth | |error| for a batch, as one (N·H, 4·W, 3) uint8 RGB picture.

    left: (N,3,H,W) in [0,255]; prediction, gt: (N,1,H,W) px; valid: (N,1,H,W) bool. Prediction and
    ground truth share the colour range of the ground truth; the error map runs 0 → ``max_error`` px
    (black where there is no ground truth).
    """
    import cv2

    from edgestereo.viz import colorize_disparity, value_range

    rows = []
    for index in range(left.shape[0]):
        image = left[index].detach().float().clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
        pred = prediction[index, 0].detach().float().cpu().numpy()
        truth = gt[index, 0].detach().float().cpu().numpy()
        mask = valid[index, 0].detach().cpu().numpy().astype(bool) & np.isfinite(truth)
        shown_truth = np.where(mask, truth, np.nan)
        vmin, vmax = value_range(shown_truth) if mask.any() else value_range(pred)
        error = np.clip(np.abs(pred - np.where(mask, truth, 0)) / max_error, 0, 1)
        error_rgb = cv2.cvtColor(cv2.applyColorMap((error * 255).astype(np.uint8), cv2.COLORMAP_INFERNO),
                                 cv2.COLOR_BGR2RGB)
        error_rgb[~mask] = 0
        rows.append(np.concatenate([image, colorize_disparity(pred, vmin, vmax),
                                    colorize_disparity(shown_truth, vmin, vmax), error_rgb], axis=1))
    return np.concatenate(rows, axis=0)


class StereoLitModule(pl.LightningModule):
    """Trains ``create_model(model, pretrained, **model_config)``: pretrained None starts from random
    weights, True from the weights packaged with edgestereo, a path from that file.

    loss: "published" (the family's loss, :func:`~edgestereo.training.losses.published_loss`, its options
    changed by ``loss_options``, e.g. ``{gradient_weight: 1.0}``) or
    "self_supervised" (:class:`~edgestereo.training.losses.SelfSupervisedLoss`, no ground truth
    needed; weights in ``self_supervised``), validated by ``val/zncc`` (mean
    :func:`~edgestereo.training.losses.zncc_cost`, the metric its best checkpoint is chosen by) and
    ``val/photometric`` (the objective's photometric term on the held-out pairs). max_disp: ground
    truth at or above it (px) is ignored by the loss and the validation metrics; None: the model's
    ``config.max_disp`` (or the published cut-off).
    Optimiser AdamW(lr, weight_decay, eps=1e-8); scheduler "onecycle" (linear, ``pct_start`` warm-up,
    over ``trainer.estimated_stepping_batches``; the public RAFT-Stereo recipe) or "constant".
    freeze_bn keeps BatchNorm statistics fixed (affine parameters still train), as RAFT-Stereo
    does when fine-tuning. val_images: pairs in the picture grid written each validation.

    quant "qat": quantization-aware training. When fitting starts the network's deploy path is
    traced at the data module's ``crop_size`` with int8 fake quantization (torchao PT2E, x86
    scheme: what ``edgestereo quantize --per-channel`` writes), its activation ranges are
    calibrated on ``qat_calibration_batches`` training batches, and training and validation run
    through that graph (validation pairs larger than the crop are scored on their centre crop,
    smaller ones padded). Float32 only; checkpoints resume with their ranges, and the exported
    weights are a plain float network for ``edgestereo export`` + ``edgestereo quantize``.
    """

    def __init__(
        self,
        model: str = DEFAULT_TRAIN_MODEL,
        model_config: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        loss: Literal["published", "self_supervised"] = "published",
        loss_options: dict[str, Any] | None = None,
        self_supervised: SelfSupervisedLoss | None = None,
        max_disp: float | None = None,
        lr: float = 2e-4,
        weight_decay: float = 1e-5,
        scheduler: Literal["onecycle", "constant"] = "onecycle",
        pct_start: float = 0.01,
        freeze_bn: bool = False,
        val_images: int = 2,
        quant: Literal["qat"] | None = None,
        qat_calibration_batches: int = 16,
    ) -> None:
        super().__init__()
        if qat_calibration_batches < 1:
            raise EdgeStereoError(f"model.qat_calibration_batches must be ≥ 1, got {qat_calibration_batches}")
        weights = self_supervised if self_supervised is not None else SelfSupervisedLoss()
        if isinstance(weights, dict):
            weights = SelfSupervisedLoss(**weights)
        # checkpoints are read back with weights_only=True: hyper-parameters must be plain data
        self.save_hyperparameters(ignore=["self_supervised"])
        self.hparams["self_supervised"] = dataclasses.asdict(weights)
        config = dict(model_config or {})
        self.model = create_model(model, pretrained=pretrained, **{k: _tuples(v) for k, v in config.items()})
        if not any(p.requires_grad for p in self.model.parameters()):
            raise EdgeStereoError(f"model {model!r} has no trainable parameters")
        self.loss_kind = loss
        self.self_supervised = weights
        if loss_options and loss != "published":
            raise EdgeStereoError("model.loss_options change the published loss; loss is " + repr(loss))
        self.supervised = published_loss(self.model, max_disp, loss_options) if loss == "published" else None
        self.max_disp = max_disp if max_disp is not None else getattr(self.model.config, "max_disp", None)
        #: the fake-quantized graph under quant "qat", built in setup() (it needs the training crop size)
        self.qat: QATModel | None = None
        self._val_sums: Tensor | None = None
        self._val_matching: list[Tensor] = []
        # create_model returns eval mode (for inference). Lightning does not switch the module to train
        # mode when fitting starts, and validation restores each submodule's mode as it found it: the
        # modes set here (BatchNorm frozen with freeze_bn) are the ones training runs in.
        self.train()

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> StereoLitModule:
        """Train mode; with ``freeze_bn`` every BatchNorm stays in eval mode (frozen statistics)."""
        super().train(mode)
        if mode and self.hparams.freeze_bn:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def on_validation_model_train(self) -> None:
        """Back to training after a validation through :meth:`train`: Lightning would only restore each
        module's ``training`` flag, which leaves the QAT graph in its eval form (it swaps graphs in
        ``train()``), so BatchNorm statistics and observers would stop moving."""
        self.train()

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """left, right: (B,3,H,W) RGB in [0,255] → disparity (B,1,H,W) px (padded to the divisor and back;
        under QAT padded to the graph's fixed size, which a larger pair must not exceed)."""
        if self.qat is not None:
            return self._fake_quantized(left, right)
        padder = InputPadder(left.shape, self.model.divisor)
        padded_left, padded_right = padder.pad(left, right)
        return padder.unpad(self.model(padded_left, padded_right))

    def trained_network(self) -> StereoModel:
        """The network with its current weights (under QAT written back from the fake-quantized graph,
        BatchNorm statistics included)."""
        return self.qat.write_back() if self.qat is not None else self.model

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the network's name and complete config (also what a pretrained file set), so the
        weights can be exported without the recipe; under QAT put the current float weights in ``model.*``."""
        network = self.trained_network()
        if self.qat is not None:
            # the graph's BatchNorm statistics are its own tensors once the module has moved devices
            checkpoint["state_dict"].update({f"model.{k}": v for k, v in network.state_dict().items()})
        config = dataclasses.asdict(network.config) if dataclasses.is_dataclass(network.config) else {}
        checkpoint[NETWORK_KEY] = {"model": network.model_name, "config": config}

    # ------------------------------------------------------------------ quantization-aware training
    def setup(self, stage: str) -> None:
        """Under quant "qat", build the fake-quantized graph, before Lightning restores a checkpoint
        into the module and builds the optimiser over the graph's parameters."""
        if self.hparams.quant == "qat" and self.qat is None:
            self.qat = self._build_qat()

    def _build_qat(self) -> QATModel:
        from edgestereo.quant.qat import QATModel

        trainer = self.trainer
        if str(trainer.precision) not in ("32-true", "32"):
            raise EdgeStereoError(f"model.quant qat trains in float32 (fake quantization has no {trainer.precision} "
                                  "path): set trainer.precision 32-true")
        datamodule = trainer.datamodule
        hparams = getattr(datamodule, "hparams", {})
        if not hasattr(datamodule, "sample_batches") or "crop_size" not in hparams:
            raise EdgeStereoError("model.quant qat needs edgestereo's StereoDataModule (its crop size is the "
                                  "fake-quantized graph's input size, its batches calibrate the ranges)")
        if hparams["crop_size"] is None:
            raise EdgeStereoError("model.quant qat needs data.crop_size: the fake-quantized graph has a fixed "
                                  "input size")
        height, width = (int(v) for v in hparams["crop_size"])
        divisor = self.model.divisor
        if height % divisor or width % divisor:
            raise EdgeStereoError(f"data.crop_size {height}x{width}: QAT needs multiples of {divisor} "
                                  f"({self.model.model_name}'s divisor)")
        rank_zero_info(f"QAT: tracing {self.model.model_name} at {width}x{height} with fake quantization "
                       "(torch.export + torchao; minutes on a small CPU)")
        # torch.export records the device of tensors the forward creates: trace where it will train
        self.model.to(trainer.strategy.root_device)
        return QATModel(self.model, height, width, freeze_bn=self.hparams.freeze_bn)

    def on_fit_start(self) -> None:
        """Calibrate the fake quantization's ranges on training batches, unless a resumed checkpoint
        brought them."""
        if self.qat is None or bool(self.qat.calibrated):
            return
        batches = self.trainer.datamodule.sample_batches(self.hparams.qat_calibration_batches)
        count = self.qat.calibrate((b["left"].to(self.device), b["right"].to(self.device)) for b in batches)
        rank_zero_info(f"QAT: activation ranges calibrated on {count} training batch(es)")

    def on_train_end(self) -> None:
        """Leave ``self.model`` holding the trained weights."""
        self.trained_network()

    def _fake_quantized(self, left: Tensor, right: Tensor) -> Tensor:
        """(B,3,h,w) ×2 → (B,1,h,w) px through the QAT graph: padded by edge replication to its size
        (centred) and cropped back."""
        assert self.qat is not None
        height, width = self.qat.input_size
        h, w = left.shape[-2:]
        if h > height or w > width:
            raise EdgeStereoError(f"the QAT graph takes at most {width}x{height}, got {w}x{h}")
        top, left_pad = (height - h) // 2, (width - w) // 2
        padding = (left_pad, width - w - left_pad, top, height - h - top)
        if any(padding):
            left, right = F.pad(left, padding, mode="replicate"), F.pad(right, padding, mode="replicate")
        return self.qat(left, right)[..., top : top + h, left_pad : left_pad + w]

    def _network_forward_train(self, left: Tensor, right: Tensor) -> Any:
        return self.qat.forward_train(left, right) if self.qat is not None else self.model.forward_train(left, right)

    # ------------------------------------------------------------------ training
    def _self_supervised_terms(self, batch: dict[str, Any], outputs: Any) -> dict[str, Tensor]:
        left, right = batch["left"], batch["right"]
        right_disparity = None
        if self.self_supervised.lr_weight > 0:
            # the right view's disparity: the same network on the mirrored, swapped pair
            mirrored = left_predictions(self._network_forward_train(_flip(right), _flip(left)))[-1]
            right_disparity = _flip(mirrored)
        return self.self_supervised(left, right, left_predictions(outputs), right_disparity)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step on a collated batch (``left``/``right`` (B,3,H,W), ``disp``/``valid`` (B,1,H,W))."""
        outputs = self._network_forward_train(batch["left"], batch["right"])
        if self.supervised is not None:
            terms = self.supervised(outputs, batch)
        else:
            terms = self._self_supervised_terms(batch, outputs)
        batch_size = batch["left"].shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=batch_size)
        if "disp" in batch:
            mask = loss_mask(batch["disp"], batch.get("valid"), self.max_disp)
            if bool(mask.any()):
                final = left_predictions(outputs)[-1].detach().float()
                self.log("train/epe", masked_mean((final - batch["disp"]).abs(), mask), prog_bar=True,
                         batch_size=batch_size)
        return terms["loss"]

    def configure_optimizers(self) -> Any:
        """AdamW over the trainable parameters, with the one-cycle schedule stepped every batch."""
        network = self.qat if self.qat is not None else self.model
        params = [p for p in network.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, eps=1e-8)
        if self.hparams.scheduler == "constant":
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        if total < 1:
            raise EdgeStereoError("the one-cycle schedule needs a finite run: set trainer.max_steps or max_epochs")
        # the public recipe schedules num_steps + 100 so the rate never quite reaches zero
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hparams.lr, total_steps=total + 100, pct_start=self.hparams.pct_start,
            cycle_momentum=False, anneal_strategy="linear",
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        # pixel counts: scored, |error| sum, > 1 px, > 3 px, D1 outliers
        self._val_sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._val_matching = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulates pixel-weighted metrics over the whole validation set (all ranks)."""
        left, right = batch["left"], batch["right"]
        gt, valid = batch.get("disp"), batch.get("valid")
        if self.qat is not None:
            # the fake-quantized graph has the training crop's size: larger pairs are scored on their centre
            left, right, gt, valid = _centre_crop(self.qat.input_size, left, right, gt, valid)
        prediction = self(left, right).float()
        if self.loss_kind == "self_supervised":
            weights = self.self_supervised
            photometric, _ = reconstruction_cost(left, right, prediction, weights.ssim_share,
                                                 weights.occlusion_tolerance)
            zncc = zncc_cost(left, right, prediction, occlusion_tolerance=weights.occlusion_tolerance)
            self._val_matching.append(torch.stack([zncc.mean(), photometric.mean()]))
        if gt is None:
            return
        mask = loss_mask(gt, valid, self.max_disp) & (gt > 0)
        if batch_idx == 0 and self.trainer.is_global_zero and self.hparams.val_images > 0:
            count = self.hparams.val_images
            self._write_grid(validation_grid(left[:count], prediction[:count], gt[:count], mask[:count]))
        error = (prediction - gt).abs()[mask].double()
        truth = gt[mask].double()
        assert self._val_sums is not None
        self._val_sums += torch.stack([
            torch.tensor(float(error.numel()), dtype=torch.float64, device=error.device),
            error.sum(),
            (error > _VAL_THRESHOLDS[0]).sum().double(),
            (error > _VAL_THRESHOLDS[1]).sum().double(),
            ((error > 3.0) & (error > 0.05 * truth)).sum().double(),
        ])

    def on_validation_epoch_end(self) -> None:
        """Logs val/epe, val/bad1, val/bad3, val/d1 (pixel-weighted over every rank) and, in
        self-supervised mode, val/zncc and val/photometric (means over the batches)."""
        if self._val_sums is None:
            return
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        metrics: dict[str, Tensor] = {}
        if sums[0] > 0:
            count = sums[0]
            metrics = {
                "val/epe": sums[1] / count,
                "val/bad1": 100 * sums[2] / count,
                "val/bad3": 100 * sums[3] / count,
                "val/d1": 100 * sums[4] / count,
            }
        if self._val_matching:
            zncc, photometric = self.trainer.strategy.reduce(torch.stack(self._val_matching).mean(0), reduce_op="mean")
            metrics["val/zncc"], metrics["val/photometric"] = zncc, photometric
        if metrics:
            self.log_dict({k: v.float() for k, v in metrics.items()}, prog_bar=True, sync_dist=False)
        self._val_sums = None

    def _write_grid(self, grid: np.ndarray) -> None:
        from edgestereo.data.io import write_image

        if self.trainer.sanity_checking:
            return
        folder = Path(self.trainer.default_root_dir) / "images"
        write_image(folder / f"val_step{self.global_step:07d}.png", grid)
        for logger in self.trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                experiment.add_image("val/left_prediction_truth_error", grid, self.global_step, dataformats="HWC")


def _centre_crop(size: tuple[int, int], *tensors: Tensor | None) -> list[Tensor | None]:
    """Each (…,H,W) tensor cropped to its centre at most ``size`` (H, W); None stays None."""
    cropped = []
    for tensor in tensors:
        if tensor is not None:
            h, w = tensor.shape[-2:]
            top, left = max(0, (h - size[0]) // 2), max(0, (w - size[1]) // 2)
            tensor = tensor[..., top : top + min(h, size[0]), left : left + min(w, size[1])]
        cropped.append(tensor)
    return cropped


def _tuples(value: Any) -> Any:
    """YAML and the command line give lists; frozen model configs hold tuples."""
    return tuple(value) if isinstance(value, list) else value
