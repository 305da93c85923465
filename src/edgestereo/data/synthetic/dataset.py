"""The synthetic data set: generated on the fly (writes nothing) or read from a folder written by
:func:`write_synthetic` (``edgestereo synth``). Both give identical samples.

Sample ``i`` of a set is a pure function of (seed, split, i), so DataLoader workers need no shared
random state and a pre-generated folder can be resumed or regenerated bit for bit.

Folder layout (``root``)::

    manifest.json                    generator settings, seed, count
    left/000000.png  right/000000.png
    disp/000000.pfm  disp_right/000000.pfm
    occ/000000.png   occ_right/000000.png    255 = not seen by the other camera
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgestereo.data.datasets._base import Sample, StereoDataset, Transform, disparity_and_valid, require_folder
from edgestereo.data.io import (
    check_output_dir,
    read_disparity,
    read_image,
    read_manifest,
    write_image,
    write_manifest,
    write_pfm,
)
from edgestereo.data.synthetic.render import SyntheticPair, render_pair
from edgestereo.data.synthetic.scene import SyntheticConfig
from edgestereo.errors import EdgeStereoError

__all__ = ["SPLITS", "SyntheticStereo", "synthetic_config", "write_synthetic"]

FORMAT = "edgestereo-synthetic"
#: each split is its own random stream, so a test set never repeats a training scene.
SPLITS = {"train": 0, "val": 1, "test": 2}
_FILES = {"left": ".png", "right": ".png", "disp": ".pfm", "disp_right": ".pfm", "occ": ".png", "occ_right": ".png"}


def synthetic_config(size: tuple[int, int] = (256, 512), max_disp: float = 192, **overrides: Any) -> SyntheticConfig:
    """A :class:`SyntheticConfig` from a (H,W) size, a maximum disparity and other field overrides."""
    names = {f.name for f in dataclasses.fields(SyntheticConfig)} - {"height", "width", "max_disp"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise EdgeStereoError(f"unknown synthetic option(s) {', '.join(unknown)}; known: num, size, max_disp, seed, "
                              f"noc, {', '.join(sorted(names))}")
    if len(size) != 2:
        raise EdgeStereoError(f"synthetic size must be (H, W), got {size}")
    tuples = {key: tuple(value) for key, value in overrides.items() if isinstance(value, list)}
    return SyntheticConfig(height=int(size[0]), width=int(size[1]), max_disp=float(max_disp), **{**overrides, **tuples})


def _split_stream(split: str) -> int:
    if split not in SPLITS:
        raise EdgeStereoError(f"synthetic: unknown split {split!r}; choose {', '.join(SPLITS)}")
    return SPLITS[split]


def _sample_from_pair(pair: SyntheticPair, noc: bool) -> Sample:
    disp, valid = disparity_and_valid(pair.disp, ~pair.occlusion if noc else None)
    disp_right, valid_right = disparity_and_valid(pair.disp_right, ~pair.occlusion_right if noc else None)
    return {"left": pair.left, "right": pair.right, "disp": disp, "valid": valid,
            "disp_right": disp_right, "valid_right": valid_right}


def _config_to_json(config: SyntheticConfig) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}


def _single_threaded_in_workers() -> None:
    """Inside a DataLoader worker, keep OpenCV to one thread: the workers already run in parallel, and
    a thread pool per worker would fight them (and the training process) for the cores."""
    import torch.utils.data

    if torch.utils.data.get_worker_info() is not None and cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


_threads_before_fork: list[int] = []


def _opencv_single_threaded_for_fork() -> None:
    # OpenCV's thread pool does not survive a fork: cv2.setNumThreads in a child forked after this
    # process used the pool waits for threads that do not exist there (a DataLoader worker hung).
    # Forking with one thread makes the child's pool trivially valid; the parent gets its count back.
    _threads_before_fork.append(cv2.getNumThreads())
    if _threads_before_fork[-1] != 1:
        cv2.setNumThreads(1)


def _opencv_threads_after_fork() -> None:
    threads = _threads_before_fork.pop() if _threads_before_fork else 1
    if threads != 1:
        cv2.setNumThreads(threads)


os.register_at_fork(before=_opencv_single_threaded_for_fork, after_in_parent=_opencv_threads_after_fork,
                    after_in_child=_threads_before_fork.clear)


class SyntheticStereo(StereoDataset):
    """Rendered stereo pairs with exact left and right disparity (see :mod:`edgestereo.data.synthetic`).

    root None: generate ``num`` (default 1000) pairs of ``size`` (H,W; default 256×512) with
    disparities below ``max_disp`` (default 192) from ``seed`` (default 0) on the fly; any other field
    of :class:`SyntheticConfig` can be overridden. root: a folder written by ``edgestereo synth`` (its
    manifest fixes the settings, so giving any of them too is refused). ``noc``: mark pixels the other
    camera does not see as invalid (by default every pixel has exact ground truth).
    """

    name = "synthetic"

    def __init__(self, root: str | Path | None = None, split: str = "train", transform: Transform | None = None,
                 num: int | None = None, size: tuple[int, int] | None = None, max_disp: float | None = None,
                 seed: int | None = None, noc: bool = False, **config: Any) -> None:
        super().__init__(transform)
        self.noc = noc
        self.root = None if root is None else Path(root)
        generation = {"num": num, "size": size, "max_disp": max_disp, "seed": seed, **config}
        if self.root is None:
            num = 1000 if num is None else num
            if num < 1:
                raise EdgeStereoError(f"synthetic: num must be ≥ 1, got {num}")
            shape = {key: value for key, value in (("size", size), ("max_disp", max_disp)) if value is not None}
            self.config = synthetic_config(**shape, **config)
            self.seed, self.count = 0 if seed is None else int(seed), int(num)
            self.split = split
            self.stream = _split_stream(split)
            return
        given = [key for key, value in generation.items() if value is not None]
        if given:
            raise EdgeStereoError(f"synthetic: {self.root} holds a written set whose manifest fixes how its pairs were "
                                  f"made; drop the option(s) {', '.join(given)}, or give no root to generate pairs")
        layout = f"root/manifest.json and root/{{{','.join(_FILES)}}}/000000.* (written by `edgestereo synth`)"
        manifest = read_synthetic_manifest(require_folder(self.root, layout))
        if not manifest.get("complete"):
            raise EdgeStereoError(f"{self.root}: synthetic set is incomplete; rerun `edgestereo synth` with the same "
                                  "arguments to finish it")
        self.config = SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v
                                         for k, v in manifest["config"].items()})
        self.seed, self.count, self.split = manifest["seed"], manifest["num"], manifest["split"]
        self.stream = _split_stream(self.split)

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> Sample:
        meta: dict[str, Any] = {"seed": self.seed, "split": self.split, "has_gt": True}
        if self.root is None:
            _single_threaded_in_workers()
            sample = _sample_from_pair(render_pair(self.config, self.seed, index, self.stream), self.noc)
        else:
            paths = {key: self.root / key / f"{index:06d}{suffix}" for key, suffix in _FILES.items()}
            pair = SyntheticPair(
                left=read_image(paths["left"]), right=read_image(paths["right"]),
                disp=read_disparity(paths["disp"]), disp_right=read_disparity(paths["disp_right"]),
                occlusion=read_image(paths["occ"], rgb8=False) > 0,
                occlusion_right=read_image(paths["occ_right"], rgb8=False) > 0,
            )
            sample = _sample_from_pair(pair, self.noc)
            meta["files"] = {key: str(path) for key, path in paths.items()}
        sample["meta"] = meta
        return sample


def read_synthetic_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a folder written by :func:`write_synthetic`, or an error naming the folder."""
    return read_manifest(root, FORMAT, "a synthetic set", "`edgestereo synth`")


def _settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """What makes two synthetic sets the same: seed, split and each field of the config."""
    config = manifest.get("config")
    return {"seed": manifest.get("seed"), "split": manifest.get("split"),
            **(config if isinstance(config, dict) else {"config": config})}


def _sample_done(root: Path, index: int) -> bool:
    return all((root / key / f"{index:06d}{suffix}").is_file() for key, suffix in _FILES.items())


_JOB: tuple[Path, SyntheticConfig, int, int] | None = None


def _init_worker(job: tuple[Path, SyntheticConfig, int, int]) -> None:
    global _JOB
    _JOB = job


def _write_one(index: int) -> int:
    assert _JOB is not None
    root, config, seed, stream = _JOB
    pair = render_pair(config, seed, index, stream)
    name = f"{index:06d}"
    write_image(root / "left" / f"{name}.png", pair.left)
    write_image(root / "right" / f"{name}.png", pair.right)
    write_pfm(root / "disp" / f"{name}.pfm", pair.disp)
    write_pfm(root / "disp_right" / f"{name}.pfm", pair.disp_right)
    write_image(root / "occ" / f"{name}.png", pair.occlusion.astype(np.uint8) * 255)
    write_image(root / "occ_right" / f"{name}.png", pair.occlusion_right.astype(np.uint8) * 255)
    return index


def write_synthetic(out: str | Path, num: int, config: SyntheticConfig, seed: int = 0, split: str = "train",
                    workers: int = 0, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``num`` samples to ``out`` (layout in the module docstring); returns the manifest.

    Resumable: samples already on disk are skipped (each file is written atomically). A folder that
    holds a set with other settings is refused. ``progress(done, total)`` is called as samples finish.
    """
    if num < 1:
        raise EdgeStereoError(f"--num must be ≥ 1, got {num}")
    root = Path(out)
    stream = _split_stream(split)
    manifest = {"format": FORMAT, "version": 1, "seed": int(seed), "split": split, "num": int(num),
                "config": _config_to_json(config), "complete": False}
    check_output_dir(root)
    if (root / "manifest.json").exists():
        previous = read_synthetic_manifest(root)
        theirs, ours = _settings(previous), _settings(manifest)
        differ = [f"{key} {theirs.get(key)!r} there, {value!r} asked" for key, value in ours.items()
                  if theirs.get(key) != value]
        if differ:
            raise EdgeStereoError(f"{root}: holds a synthetic set with other settings ({'; '.join(differ)}); "
                                  "choose another --out or the folder's settings")
    elif root.is_dir() and any(root.iterdir()):
        raise EdgeStereoError(f"{root}: folder is not empty and is not a synthetic set; choose another --out")
    for key in _FILES:
        (root / key).mkdir(parents=True, exist_ok=True)
    write_manifest(root, manifest)
    todo = [i for i in range(num) if not _sample_done(root, i)]
    done = num - len(todo)
    if progress:
        progress(done, num)
    job = (root, config, int(seed), stream)
    if workers > 0 and len(todo) > 1:
        # the platform's default start method: fork on Linux, so workers start without re-importing
        with multiprocessing.get_context().Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
            for _ in pool.imap_unordered(_write_one, todo, chunksize=4):
                done += 1
                if progress:
                    progress(done, num)
    else:
        _init_worker(job)
        for index in todo:
            _write_one(index)
            done += 1
            if progress:
                progress(done, num)
    manifest["complete"] = True
    write_manifest(root, manifest)
    return manifest
