"""StereoDataModule: data order per (seed, epoch) split across ranks, mid-epoch resume, seeded
augmentation, hold-out validation and the configuration errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from edgestereo.errors import EdgeStereoError
from edgestereo.training.datamodule import EpochSampler, StereoDataModule

OPTIONS = {"num": 6, "size": [48, 96], "max_disp": 16}


def _sampler(rank: int = 0, world: int = 1, length: int = 10, seed: int = 0) -> EpochSampler:
    return EpochSampler(list(range(length)), num_replicas=world, rank=rank, shuffle=True, seed=seed)


def test_ranks_get_disjoint_shares_of_one_permutation_per_epoch():
    ranks = [_sampler(rank, 2, length=11) for rank in (0, 1)]
    shares = [[index for _, index in sampler] for sampler in ranks]
    assert len(shares[0]) == len(shares[1]) == 5  # the odd sample out is dropped, never duplicated
    assert set(shares[0]).isdisjoint(shares[1])
    for sampler in ranks:
        sampler.set_epoch(1)
    assert [[i for _, i in s] for s in ranks] != shares
    assert {epoch for s in ranks for epoch, _ in s} == {1}


def test_resume_at_skips_what_was_consumed_in_that_epoch_only():
    full = list(_sampler_at(epoch=2))
    resumed = _sampler()
    resumed.resume_at(2, 3)
    assert list(resumed) == full[3:]
    assert list(resumed) == full  # the next pass over the same epoch is whole again
    resumed.set_epoch(3)
    assert len(list(resumed)) == 10


def _sampler_at(epoch: int) -> EpochSampler:
    sampler = _sampler()
    sampler.set_epoch(epoch)
    return sampler


def test_augmentation_depends_on_seed_epoch_and_index_only():
    module = StereoDataModule(options={**OPTIONS, "size": [64, 160]}, crop_size=(48, 96), augmentation="synthetic",
                              batch_size=2, val_split=None)
    module.setup("fit")
    data = module.train_set
    first, again, other_epoch = data[(0, 4)], data[(0, 4)], data[(1, 4)]
    assert first["left"].shape == (3, 48, 96) and first["disp"].shape == (1, 48, 96)
    assert torch.equal(first["left"], again["left"]) and torch.equal(first["disp"], again["disp"])
    assert not torch.equal(first["left"], other_epoch["left"])


def test_loaders_and_the_resume_state():
    module = StereoDataModule(options=OPTIONS, val_options={**OPTIONS, "num": 2}, crop_size=None,
                              augmentation="none", batch_size=2)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["left"].shape == (2, 3, 48, 96) and batch["valid"].dtype == torch.bool
    assert len(module.train_dataloader()) == 3 and len(module.val_dataloader()) == 2
    module.load_state_dict({"epoch": 1, "consumed": 4})
    loader = module.train_dataloader()
    assert list(loader.sampler) == list(_sampler_at_epoch(module, 1))[4:]
    assert module.state_dict() == {}  # no trainer, nothing to record


class _AtEpoch:
    """The bits of a Trainer the data module reads: the epoch, and a loader rebuilt every epoch."""

    def __init__(self, epoch: int) -> None:
        self.current_epoch, self.world_size, self.global_rank = epoch, 1, 0
        self.reload_dataloaders_every_n_epochs = 1


def test_phases_change_crop_batch_and_training_set_by_epoch():
    phases = [{"epochs": 2, "crop_size": [32, 64], "batch_size": 3, "options": {"size": [32, 64], "max_disp": 8}}]
    module = StereoDataModule(options=OPTIONS, val_split=None, crop_size=[48, 96], augmentation="none",
                              batch_size=2, phases=phases)
    assert module.phase(1) == ((32, 64), 3, {**OPTIONS, "size": [32, 64], "max_disp": 8})
    assert module.phase(2) == ((48, 96), 2, OPTIONS)
    module.trainer = _AtEpoch(1)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["left"].shape == (3, 3, 32, 64) and float(batch["disp"].max()) < 8
    assert module.train_set.dataset.config.width == 64  # scenes rendered at the phase's size
    module.trainer = _AtEpoch(2)
    batch = next(iter(module.train_dataloader()))
    assert batch["left"].shape == (2, 3, 48, 96)
    assert module.train_set.dataset.config.width == 96
    assert len(module.train_dataloader()) == 3  # 6 samples in batches of 2


@pytest.mark.parametrize(("phases", "message"), [
    ([{"epochs": 1, "crop_size": [32, 64]}], "takes the keys epochs, crop_size, batch_size"),
    ([{"epochs": 0, "crop_size": [32, 64], "batch_size": 2}], "data.phases[0].epochs must be an integer ≥ 1"),
    ([{"epochs": 1, "crop_size": [32], "batch_size": 2}], "data.phases[0].crop_size must be (height, width)"),
    ([{"epochs": 1, "crop_size": [32, 64], "batch_size": 2, "options": 3}], "options must be a mapping"),
])
def test_phase_errors(phases, message):
    with pytest.raises(EdgeStereoError, match=re.escape(message)):
        StereoDataModule(options=OPTIONS, phases=phases)


def test_phases_need_a_loader_rebuilt_every_epoch():
    module = StereoDataModule(options=OPTIONS, crop_size=None, val_split=None,
                              phases=[{"epochs": 1, "crop_size": [32, 64], "batch_size": 2}])
    module.trainer = _AtEpoch(0)
    module.trainer.reload_dataloaders_every_n_epochs = 0
    with pytest.raises(EdgeStereoError, match="reload_dataloaders_every_n_epochs: 1"):
        module.setup("fit")


def _sampler_at_epoch(module: StereoDataModule, epoch: int) -> EpochSampler:
    sampler = EpochSampler(module.train_set, num_replicas=1, rank=0, shuffle=True, seed=module.hparams.seed)
    sampler.set_epoch(epoch)
    return sampler


def test_holdout_validation_takes_the_last_samples():
    module = StereoDataModule(options=OPTIONS, val_split="holdout", holdout=2, crop_size=None, augmentation="none",
                              batch_size=2)
    module.setup("fit")
    assert len(module.train_set) == 4 and len(module.val_set) == 2
    assert {module.train_set[(0, i)]["meta"]["index"] for i in range(4)} == {0, 1, 2, 3}
    assert [module.val_set[i]["meta"]["index"] for i in range(2)] == [4, 5]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"root": "/no/such/folder"}, "data.root: /no/such/folder does not exist"),
    ({"val_root": "/no/such/folder"}, "data.val_root: /no/such/folder does not exist"),
    ({"batch_size": 0}, "must be ≥ 1"),
    ({"crop_size": (32,)}, "data.crop_size must be (height, width)"),
    ({"val_split": "holdout"}, "holdout and data.holdout > 0 go together"),
    ({"holdout": 3}, "holdout and data.holdout > 0 go together"),
])
def test_configuration_errors(kwargs, message):
    with pytest.raises(EdgeStereoError, match=re.escape(message)):
        StereoDataModule(options=OPTIONS, **kwargs)


def test_data_set_errors_at_setup():
    with pytest.raises(EdgeStereoError, match=r"data\.batch_size 8 is larger than the data set"):
        StereoDataModule(options=OPTIONS, batch_size=8, crop_size=None).setup("fit")
    with pytest.raises(EdgeStereoError, match=r"data\.holdout 6 leaves nothing to train on"):
        StereoDataModule(options=OPTIONS, val_split="holdout", holdout=6, crop_size=None).setup("fit")


#: Validation after validation with a DataLoader worker, in a process that uses OpenCV's thread pool
#: in between (as the validation picture grid does).
_VALIDATIONS_WITH_A_WORKER = """
import time
import cv2
import numpy as np
from edgestereo.training.datamodule import StereoDataModule

cv2.setNumThreads(2)  # a thread pool even on a one-core machine
module = StereoDataModule(val_options={"num": 2, "size": [48, 96], "max_disp": 16}, num_workers=1)
module.setup("validate")
image = np.zeros((512, 1024, 3), np.uint8)
for _ in range(2):
    cv2.resize(image, (2048, 1024))
    time.sleep(0.1)  # the pool's threads are asleep when the next worker is forked
    pairs = sum(len(batch["left"]) for batch in module.val_dataloader())
print(pairs)
"""


def test_workers_forked_after_this_process_used_opencv_threads_do_not_hang():
    """The synthetic set keeps OpenCV to one thread in each worker; cv2.setNumThreads in a worker forked
    from a process whose OpenCV pool had run waited forever, so validation never got its first batch."""
    # a session of its own, so that a hung worker can be ended with its parent
    process = subprocess.Popen([sys.executable, "-c", _VALIDATIONS_WITH_A_WORKER], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("a validation DataLoader worker hung")
    assert process.returncode == 0, err[-2000:]
    assert out.split() == ["2"]
