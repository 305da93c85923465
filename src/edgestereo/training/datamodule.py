"""The LightningDataModule: any registered data set (``edgestereo.data.create_dataset``) for
training and validation, random crops and augmentation, and a data order that survives a kill.

Resuming in the middle of an epoch continues with the very samples the killed run would have
seen next: the order is a function of (seed, epoch) only, the checkpoint records how many samples
of the epoch each rank has consumed, and each sample's augmentation draws from a generator seeded
by (seed, epoch, index) rather than from a global stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from edgestereo.errors import EdgeStereoError

__all__ = ["HOLDOUT", "EpochSampler", "StereoDataModule"]

#: ``val_split`` that validates on the last ``holdout`` samples of the training split.
HOLDOUT = "holdout"


class EpochSampler(DistributedSampler):
    """This rank's share of a permutation seeded by (seed, epoch), yielding ``(epoch, index)`` so
    that samples can seed their augmentation; :meth:`resume_at` skips what a killed run consumed.

    Every rank gets ``len(dataset) // num_replicas`` distinct samples (the remainder is dropped so
    ranks never see the same sample twice in an epoch).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self._resume_epoch: int | None = None
        self._resume_offset = 0

    def resume_at(self, epoch: int, consumed: int) -> None:
        """Start epoch ``epoch`` after the first ``consumed`` samples of this rank."""
        self.set_epoch(epoch)
        self._resume_epoch, self._resume_offset = epoch, consumed

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())
        start = self._resume_offset if self._resume_epoch == self.epoch else 0
        self._resume_epoch, self._resume_offset = None, 0
        return iter([(self.epoch, index) for index in indices[start:]])


class _Augmented(Dataset):
    """Applies ``transform(sample, rng)`` with a generator seeded by (seed, epoch, index), then
    converts to tensors."""

    def __init__(self, dataset: Dataset, transform: Any, seed: int) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        from edgestereo.data import to_tensors

        epoch, index = key
        sample = self.dataset[index]
        if self.transform is not None:
            sample = self.transform(sample, np.random.default_rng([self.seed, epoch, index]))
        return to_tensors(sample)


def _single_threaded_opencv_before_fork() -> None:
    """Keep this process's OpenCV to one thread before DataLoader workers are forked from it.

    OpenCV's thread pool does not survive a fork: once this process has used it (the validation
    picture grid does), ``cv2.setNumThreads`` in a forked worker, which the synthetic set calls to
    keep each worker to one thread, waits forever for pool threads that do not exist in the child;
    validation then never received its first batch. With workers doing the image work, this process
    needs OpenCV only for that picture.
    """
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


class _Tensors(Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from edgestereo.data import to_tensors

        return to_tensors(self.dataset[index])


def _check_phases(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate ``data.phases`` entries: {"epochs" ≥ 1, "crop_size" (H, W), "batch_size" ≥ 1}."""
    checked = []
    for index, phase in enumerate(phases):
        keys = {"epochs", "crop_size", "batch_size"}
        if not isinstance(phase, dict) or not keys <= set(phase) <= keys | {"options"}:
            raise EdgeStereoError(f"data.phases[{index}] takes the keys epochs, crop_size, batch_size and "
                                  f"optionally options; got {phase!r}")
        if not isinstance(phase.get("options", {}), dict):
            raise EdgeStereoError(f"data.phases[{index}].options must be a mapping, got {phase['options']!r}")
        crop = phase["crop_size"]
        if not isinstance(crop, (list, tuple)) or len(crop) != 2 or not all(isinstance(v, int) and v > 0 for v in crop):
            raise EdgeStereoError(f"data.phases[{index}].crop_size must be (height, width), got {crop!r}")
        for key in ("epochs", "batch_size"):
            if not isinstance(phase[key], int) or phase[key] < 1:
                raise EdgeStereoError(f"data.phases[{index}].{key} must be an integer ≥ 1, got {phase[key]!r}")
        checked.append({"epochs": phase["epochs"], "crop_size": tuple(crop), "batch_size": phase["batch_size"],
                        "options": dict(phase.get("options", {}))})
    return checked


class StereoDataModule(pl.LightningDataModule):
    """Training and validation data.

    dataset/root/split/options: ``create_dataset(dataset, root, split, **options)`` for training
    (root None: generated data sets only, e.g. "synthetic"). val_dataset/val_root/val_options
    default to the training ones; val_split None disables validation; val_split "holdout"
    validates on the last ``holdout`` samples of the training split and trains on the others (for
    layouts without a validation split, e.g. KITTI). crop_size: (H, W) random
    crops for training (multiples of the model's divisor), None for whole images (equal sizes).
    augmentation: a recipe of ``edgestereo.data.transforms.RECIPES`` ("sceneflow", "kitti",
    "middlebury", "synthetic") or "none" (random crop only).
    batch_size is per process (per GPU under DDP). seed: data order and augmentation.

    phases: progressive resizing, e.g. ``[{"epochs": 2, "crop_size": [128, 256], "batch_size": 8,
    "options": {"size": [128, 256], "max_disp": 96}}]``: the first 2 epochs train on 128×256 crops in
    batches of 8 of a training set created with ``options`` updated by the phase's (here: synthetic
    scenes rendered at half size, four times cheaper), later epochs on ``crop_size``, ``batch_size``
    and ``options``. Phases follow each other in order; the loader is rebuilt at every epoch
    (``trainer.reload_dataloaders_every_n_epochs: 1``), and the learning-rate schedule, which counts
    steps, runs through all of them.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        split: str = "train",
        options: dict[str, Any] | None = None,
        val_dataset: str | None = None,
        val_root: str | None = None,
        val_split: str | None = "val",
        val_options: dict[str, Any] | None = None,
        holdout: int = 0,
        crop_size: tuple[int, int] | None = (256, 512),
        augmentation: str = "synthetic",
        batch_size: int = 2,
        val_batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        phases: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for option, value in (("data.root", root), ("data.val_root", val_root)):
            if value is not None and not Path(value).exists():
                raise EdgeStereoError(f"{option}: {value} does not exist")
        if batch_size < 1 or val_batch_size < 1:
            raise EdgeStereoError(f"data.batch_size and data.val_batch_size must be ≥ 1, got {batch_size}, "
                                  f"{val_batch_size}")
        if crop_size is not None and (len(crop_size) != 2 or min(crop_size) < 1):
            raise EdgeStereoError(f"data.crop_size must be (height, width), got {crop_size}")
        if (val_split == HOLDOUT) != (holdout > 0):
            raise EdgeStereoError(f"data.val_split: {HOLDOUT} and data.holdout > 0 go together "
                                  f"(got val_split={val_split!r}, holdout={holdout})")
        self._phases = _check_phases(phases or [])
        if val_split == HOLDOUT and any(phase["options"] for phase in self._phases):
            raise EdgeStereoError("data.phases options cannot change the training set when data.val_split is "
                                  f"{HOLDOUT} (the held-out pairs come from it)")
        self._train_options: dict[str, Any] | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._resume: dict[str, int] | None = None

    def phase(self, epoch: int) -> tuple[tuple[int, int] | None, int, dict[str, Any]]:
        """(crop size, batch size, training-set options) of training epoch ``epoch``."""
        options = dict(self.hparams.options or {})
        first = 0
        for phase in self._phases:
            first += phase["epochs"]
            if epoch < first:
                return phase["crop_size"], phase["batch_size"], {**options, **phase["options"]}
        crop = self.hparams.crop_size
        return (tuple(crop) if crop is not None else None), self.hparams.batch_size, options

    def crop_sizes(self) -> dict[str, tuple[int, int]]:
        """Option name → the (H, W) training crop it sets, for every phase and the epochs after them."""
        crops = {f"data.phases[{index}].crop_size": phase["crop_size"] for index, phase in enumerate(self._phases)}
        if self.hparams.crop_size is not None:
            crops["data.crop_size"] = tuple(self.hparams.crop_size)
        return crops

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    # ------------------------------------------------------------------ data sets
    def _create(self, name: str, root: str | None, split: str, options: dict[str, Any] | None) -> Dataset:
        from edgestereo.data import create_dataset

        return create_dataset(name, root=root, split=split, **dict(options or {}))

    def _train_transform(self, crop: tuple[int, int] | None) -> Any:
        from edgestereo.data.transforms import training_transform

        recipe = self.hparams.augmentation
        if recipe == "none":
            return training_transform(crop, augment=False)
        return training_transform(crop, augment=True, recipe=recipe)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if hp.val_split == HOLDOUT and (self.train_set is None or self.val_set is None):
            full = self._create(hp.dataset, hp.root, hp.split, hp.options)
            if len(full) <= hp.holdout:
                raise EdgeStereoError(f"data.holdout {hp.holdout} leaves nothing to train on: {hp.dataset} "
                                      f"({hp.split}) has {len(full)} samples")
            self.val_set = _Tensors(Subset(full, range(len(full) - hp.holdout, len(full))))
            self._use_for_training(Subset(full, range(len(full) - hp.holdout)))
            return
        if stage == "fit" and self.train_set is None:
            self._train_options = self.phase(self._epoch())[2]
            self._use_for_training(self._create(hp.dataset, hp.root, hp.split, self._train_options))
        if stage in ("fit", "validate") and self.val_set is None and hp.val_split is not None:
            name = hp.val_dataset or hp.dataset
            root = hp.val_root if hp.val_dataset is not None or hp.val_root is not None else hp.root
            options = hp.val_options if hp.val_options is not None else hp.options
            raw = self._create(name, root, hp.val_split, options)
            if len(raw) == 0:
                raise EdgeStereoError(f"validation set {name} ({hp.val_split}) is empty")
            self.val_set = _Tensors(raw)

    def _use_for_training(self, raw: Dataset) -> None:
        """Keep ``raw`` as the training set, or refuse a batch larger than a process's share of it."""
        hp = self.hparams
        world = self.trainer.world_size if self.trainer is not None else 1
        per_rank = len(raw) // world  # type: ignore[arg-type]
        largest = max([hp.batch_size, *(phase["batch_size"] for phase in self._phases)])
        if per_rank < largest:
            raise EdgeStereoError(
                f"data.batch_size {largest} is larger than the data set: {hp.dataset} ({hp.split}) has "
                f"{len(raw)} training samples, {per_rank} per process on {world} process(es)"  # type: ignore[arg-type]
            )
        if self._phases and self.trainer is not None and self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise EdgeStereoError("data.phases needs trainer.reload_dataloaders_every_n_epochs: 1 (the loader "
                                  "changes crop and batch size between epochs)")
        crop = self.phase(self._epoch())[0]
        self.train_set = _Augmented(raw, self._train_transform(crop), hp.seed)

    def sample_batches(self, count: int) -> Iterator[dict[str, Any]]:
        """Up to ``count`` collated training batches (``batch_size`` pairs, augmented and cropped as
        epoch 0 sees them) of pairs drawn at random with ``seed``: the same on every rank and run.
        Leaves the training order untouched (QAT calibrates its ranges on them)."""
        import torch

        from edgestereo.data import collate_stereo

        assert self.train_set is not None, "setup('fit') first"
        size = self.phase(0)[1]
        total = min(len(self.train_set), count * size)
        picks = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(self.hparams.seed))
        for start in range(0, total, size):
            yield collate_stereo([self.train_set[(0, int(i))] for i in picks[start : min(start + size, total)]])

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        from edgestereo.data import collate_stereo

        assert self.train_set is not None, "setup('fit') first"
        trainer = self.trainer
        crop, batch_size, options = self.phase(self._epoch())
        if self._train_options is not None and options != self._train_options:
            self._train_options = options
            hp = self.hparams
            self.train_set = _Augmented(self._create(hp.dataset, hp.root, hp.split, options), None, hp.seed)
        self.train_set.transform = self._train_transform(crop)
        sampler = EpochSampler(self.train_set, num_replicas=trainer.world_size if trainer else 1,
                               rank=trainer.global_rank if trainer else 0, shuffle=True, seed=self.hparams.seed)
        if self._resume is not None:
            sampler.resume_at(self._resume["epoch"], self._resume["consumed"])
            self._resume = None
        if self.hparams.num_workers > 0:
            _single_threaded_opencv_before_fork()
        return DataLoader(self.train_set, batch_size=batch_size, sampler=sampler, drop_last=True,
                          num_workers=self.hparams.num_workers, collate_fn=collate_stereo,
                          persistent_workers=self.hparams.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        from edgestereo.data import collate_stereo

        if self.val_set is None:
            return []
        if self.hparams.num_workers > 0:
            _single_threaded_opencv_before_fork()
        return DataLoader(self.val_set, batch_size=self.hparams.val_batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_stereo)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, int]:
        """Where the training data stands: the epoch and the samples this rank consumed in it."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": trainer.current_epoch, "consumed": batches * self.phase(trainer.current_epoch)[1]}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if "epoch" in state_dict:
            self._resume = {"epoch": int(state_dict["epoch"]), "consumed": int(state_dict["consumed"])}
