"""Callbacks for long, interruptible runs: throughput on the progress bar, a ``last.ckpt`` written
every N steps, on SIGTERM and at the end, carrying the random-number-generator states so that a
resumed run continues exactly where the killed one stopped, and a best checkpoint that counts the
starting weights among its candidates."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from edgestereo.errors import EdgeStereoError

__all__ = ["LAST_CHECKPOINT", "BestCheckpoint", "StepCheckpoint", "TrainingSpeed", "collect_rng_states",
           "restore_rng_states"]

#: file name of the checkpoint ``--resume last`` continues from.
LAST_CHECKPOINT = "last.ckpt"


class TrainingSpeed(pl.Callback):
    """Logs ``train/samples_per_s`` (all ranks together, data loading included, validation
    excluded) to the progress bar and the loggers, smoothed exponentially over steps."""

    def __init__(self, smoothing: float = 0.9) -> None:
        if not 0 <= smoothing < 1:
            raise EdgeStereoError(f"TrainingSpeed smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self._last_end: float | None = None
        self._rate: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None and now > self._last_end:
            batch_size = batch["left"].shape[0]
            rate = batch_size * trainer.world_size / (now - self._last_end)
            self._rate = rate if self._rate is None else self.smoothing * self._rate + (1 - self.smoothing) * rate
            pl_module.log("train/samples_per_s", self._rate, prog_bar=True, on_step=True, on_epoch=False,
                          batch_size=batch_size)
        self._last_end = now


def collect_rng_states() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python RNG states as tensors and plain numbers, so that a
    checkpoint holding them still loads with ``weights_only=True``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`collect_rng_states`."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(int(v) for v in python_state["state"].tolist()),
                     python_state["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class StepCheckpoint(pl.Callback):
    """Writes ``<dirpath>/last.ckpt`` every ``every_n_steps`` optimiser steps, when the run receives
    SIGTERM (what ``kill``, SLURM pre-emption and ``docker stop`` send: in training at the end of
    the step in progress, in validation at once) and when training ends. The file is written beside
    its target and renamed, so a kill during the write leaves the previous one intact.

    dirpath: by default ``<trainer.default_root_dir>/checkpoints``. The callback's state in every
    checkpoint is the RNG states, restored on resume.
    """

    def __init__(self, dirpath: str | None = None, every_n_steps: int = 100) -> None:
        if every_n_steps < 1:
            raise EdgeStereoError(f"StepCheckpoint every_n_steps must be ≥ 1, got {every_n_steps}")
        self.dirpath = Path(dirpath) if dirpath else None
        self.every_n_steps = every_n_steps
        self._saved_step = -1
        # the SIGTERM handler that was in place before validation took it over (None: not taken over)
        self._handler_outside_validation: Any = None

    @property
    def state_key(self) -> str:
        return "StepCheckpoint"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = Path(trainer.default_root_dir) / "checkpoints"

    @property
    def last_path(self) -> Path:
        """Where ``last.ckpt`` goes."""
        if self.dirpath is None:
            raise EdgeStereoError("StepCheckpoint has no folder before the trainer is set up")
        return self.dirpath / LAST_CHECKPOINT

    def save(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` now (every rank calls this; rank 0 writes)."""
        if trainer.global_step == self._saved_step:
            return
        target = self.last_path
        staging = target.with_name(f".{target.name}.partial")
        trainer.save_checkpoint(staging, weights_only=False)
        if trainer.is_global_zero:
            os.replace(staging, target)
        trainer.strategy.barrier("StepCheckpoint.save")
        self._saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # the last step is saved here too, before on_train_end hooks change the module (a weight
        # average's copies itself into it): the checkpoint keeps the weights training would go on from
        last = trainer.max_steps is not None and trainer.global_step == trainer.max_steps
        if trainer.global_step > 0 and (trainer.global_step % self.every_n_steps == 0 or last):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    # Lightning notes a SIGTERM and acts on it only between validation batches, so a batch that is
    # slow (a full-resolution pair on a CPU) or never ends (a stuck DataLoader worker, a stalled
    # network file system) held the stop back for as long as it lasted. Validation changes neither
    # the weights nor the optimiser, the data order or the RNG states, so during validation the run
    # stops at once; the resumed run goes on with the next training step.
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._stop_at_once_on_sigterm()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigterm_handler()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_sigterm_handler()

    def _stop_at_once_on_sigterm(self) -> None:
        # only the main thread may set signal handlers; None: a handler installed outside Python
        if self._handler_outside_validation is not None or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None or previous == signal.SIG_IGN:
            return

        def stop_now(signum: int, frame: Any) -> None:
            self._restore_sigterm_handler()
            if callable(previous):
                # Lightning's handler: records the signal and passes it on to the other DDP processes
                previous(signum, frame)
            raise SIGTERMException

        self._handler_outside_validation = previous
        signal.signal(signal.SIGTERM, stop_now)

    def _restore_sigterm_handler(self) -> None:
        if self._handler_outside_validation is not None:
            signal.signal(signal.SIGTERM, self._handler_outside_validation)
            self._handler_outside_validation = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # a second SIGTERM while the checkpoint is written must not interrupt the write
        self._restore_sigterm_handler()
        # SIGTERM is acted on between training steps or during validation, so the state is
        # consistent; a Ctrl-C can land in the middle of a step, so that run resumes from the
        # previous periodic checkpoint instead.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            self.save(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": collect_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            restore_rng_states(state_dict["rng"])


class BestCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` whose candidates include the starting
    weights: with ``include_start`` (and a monitored validation metric), a fresh run validates once
    before its first training step, logs the metrics at step 0 and saves that checkpoint like any
    other validation's. Fine-tuning then never exports weights that score worse on the validation
    pairs than the ones it started from: when no step improves on the start, the start is the best.

    A resumed run (step > 0) does not validate again: its start was scored by the run it continues.
    """

    def __init__(self, *args: Any, include_start: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.include_start = include_start
        self._scoring_start = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not self.include_start or self.monitor is None or trainer.global_step > 0 or not trainer.enable_validation:
            return
        # what Lightning's training loop does around a validation inside an epoch
        self._scoring_start = True
        trainer.validating = True
        try:
            trainer.fit_loop.epoch_loop.val_loop.run()
        finally:
            trainer.training = True
            self._scoring_start = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._scoring_start:
            # ModelCheckpoint saves nothing at step 0 ("no steps were taken"): rank the start here
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_validation_end(trainer, pl_module)
