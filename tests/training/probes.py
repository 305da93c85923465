"""Callbacks the training tests add by class path (``--trainer.callbacks+=probes.…``, with this folder
on the Python path): they stop a run with a real SIGTERM, and record what each DDP rank saw."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import lightning.pytorch as pl


class SigtermAtStep(pl.Callback):
    """Sends SIGTERM to this process when the given optimiser step has finished."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermInStuckValidation(pl.Callback):
    """Validation batch ``batch`` of the validation that follows optimiser step ``step`` never ends
    (a sleep of ``stall`` seconds stands in for a DataLoader worker that does not answer); SIGTERM
    arrives from another thread while it waits. Writes ``finished`` if the stuck batch ever ends."""

    def __init__(self, step: int, finished: str, batch: int = 1, stall: float = 60.0) -> None:
        self.step, self.batch, self.stall, self.finished = step, batch, stall, Path(finished)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or trainer.global_step != self.step or batch_idx != self.batch:
            return
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(self.stall)
        self.finished.write_text(f"validation batch {batch_idx} after step {self.step} finished")


class StuckValidation(pl.Callback):
    """On every rank, validation batch ``batch`` of the validation after optimiser step ``step`` waits
    ``stall`` seconds; writes ``<out>/stuck<rank>`` when it starts waiting and ``<out>/finished<rank>``
    if the wait ever ends."""

    def __init__(self, out: str, step: int, batch: int = 1, stall: float = 120.0) -> None:
        self.out, self.step, self.batch, self.stall = Path(out), step, batch, stall

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or trainer.global_step != self.step or batch_idx != self.batch:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"stuck{trainer.global_rank}").write_text("")
        time.sleep(self.stall)
        (self.out / f"finished{trainer.global_rank}").write_text("")


def _digest(tensor) -> str:
    return hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class RecordRank(pl.Callback):
    """Writes <out>/rank<N>.json: a digest of every training sample this rank saw and of its final
    parameters."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.samples: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.samples += [_digest(image) for image in batch["left"]]

    def on_train_end(self, trainer, pl_module) -> None:
        parameters = hashlib.sha1()
        for key, value in sorted(pl_module.model.named_parameters()):
            parameters.update(key.encode() + value.detach().cpu().contiguous().numpy().tobytes())
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "global_step": trainer.global_step,
                  "samples": self.samples, "parameters": parameters.hexdigest()}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
