"""Middlebury 2014 scenes, the MiddEval3 benchmark and ETH3D two-view: one scene per folder with
``im0``/``im1`` and a Middlebury-style ``calib.txt``.

Layouts (``root``)::

    Middlebury 2014                 MiddEval3                        ETH3D two-view
    Adirondack-perfect/             trainingF/Adirondack/            two_view_training/delivery_area_1l/
      im0.png im1.png                 im0.png im1.png calib.txt        im0.png im1.png calib.txt
      im1E.png im1L.png               disp0GT.pfm mask0nocc.png      two_view_training_gt/delivery_area_1l/
      disp0.pfm disp1.pfm             [disp1GT.pfm mask1nocc.png]      disp0GT.pfm mask0nocc.png
      calib.txt                     trainingH/…, trainingQ/…         two_view_test/<scene>/im0.png im1.png
    Adirondack-imperfect/…          testF/…, testH/…, testQ/…

Ground truth: PFM, inf = unknown. ``mask0nocc.png``: 255 = seen by both cameras, 128 = occluded,
0 = no ground truth; ``noc=True`` keeps only 255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestereo.data.datasets._base import (
    PairRecord,
    PairStereoDataset,
    Transform,
    check_records_exist,
    middlebury_calib,
    require_folder,
)
from edgestereo.errors import EdgeStereoError

__all__ = ["ETH3D", "MiddEval3", "Middlebury2014"]


def _scenes(folder: Path, layout: str, pattern: str = "*") -> list[Path]:
    scenes = sorted(p for p in folder.glob(pattern) if p.is_dir())
    if not scenes:
        raise EdgeStereoError(f"{folder}: no scene folders ({pattern}); expected the layout {layout}")
    return scenes


class Middlebury2014(PairStereoDataset):
    """The 2014 scenes with ground truth (all of them: the split is ``train``).

    variant: ``perfect`` (exact rectification), ``imperfect`` or ``both``. right_image: ``im1``, or
    ``im1E`` (different exposure) / ``im1L`` (different lighting) for photometric robustness.
    """

    name = "middlebury"

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 variant: str = "perfect", right_image: str = "im1", right_disparity: bool = False) -> None:
        layout = "root/<Scene>-{perfect,imperfect}/{im0.png,im1.png,disp0.pfm,disp1.pfm,calib.txt}"
        if root is None:
            raise EdgeStereoError("middlebury needs root: the folder holding <Scene>-perfect/ folders")
        root = require_folder(Path(root), layout)
        if split != "train":
            raise EdgeStereoError(f"middlebury: unknown split {split!r}; the 2014 scenes with ground truth are 'train'")
        suffixes = {"perfect": ("-perfect",), "imperfect": ("-imperfect",), "both": ("-perfect", "-imperfect")}
        if variant not in suffixes:
            raise EdgeStereoError(f"middlebury: unknown variant {variant!r}; choose perfect, imperfect or both")
        if right_image not in ("im1", "im1E", "im1L"):
            raise EdgeStereoError(f"middlebury: unknown right_image {right_image!r}; choose im1, im1E or im1L")
        scenes = [s for s in _scenes(root, layout) if s.name.endswith(suffixes[variant])]
        if not scenes:
            raise EdgeStereoError(f"{root}: no scene folders ending in {' or '.join(suffixes[variant])}; expected "
                                  f"the layout {layout}")
        records = [PairRecord(left=s / "im0.png", right=s / f"{right_image}.png", disp=s / "disp0.pfm",
                              disp_right=s / "disp1.pfm" if right_disparity else None, calib=s / "calib.txt",
                              extra={"scene": s.name}) for s in scenes]
        check_records_exist(records, str(root))
        super().__init__(records, transform)

    def read_calib(self, path: Path) -> dict[str, Any]:
        return middlebury_calib(path, "mm")


class MiddEval3(PairStereoDataset):
    """The MiddEval3 benchmark: ``train`` = training{F,H,Q}, ``test`` = test{F,H,Q} (no ground truth).

    resolution: ``F`` (full), ``H`` (half, default) or ``Q`` (quarter).
    """

    name = "middeval3"

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 resolution: str = "H", noc: bool = False, right_disparity: bool = False) -> None:
        layout = "root/{trainingF,trainingH,trainingQ,testF,testH,testQ}/<Scene>/{im0.png,im1.png,disp0GT.pfm}"
        if root is None:
            raise EdgeStereoError("middeval3 needs root: the MiddEval3 folder holding trainingH/ etc.")
        root = require_folder(Path(root), layout)
        if resolution not in ("F", "H", "Q"):
            raise EdgeStereoError(f"middeval3: unknown resolution {resolution!r}; choose F, H or Q")
        if split not in ("train", "test"):
            raise EdgeStereoError(f"middeval3: unknown split {split!r}; choose train or test")
        folder = require_folder(root / f"{'training' if split == 'train' else 'test'}{resolution}", layout)
        train = split == "train"
        records = [PairRecord(
            left=s / "im0.png", right=s / "im1.png", disp=s / "disp0GT.pfm" if train else None,
            disp_right=s / "disp1GT.pfm" if train and right_disparity else None,
            mask=s / "mask0nocc.png" if train and noc else None,
            mask_right=s / "mask1nocc.png" if train and noc and right_disparity else None,
            calib=s / "calib.txt", extra={"scene": s.name}) for s in _scenes(folder, layout)]
        check_records_exist(records, str(folder))
        super().__init__(records, transform, noc=noc)

    def read_calib(self, path: Path) -> dict[str, Any]:
        return middlebury_calib(path, "mm")


class ETH3D(PairStereoDataset):
    """ETH3D low-res two-view: ``train`` (27 scenes with ground truth) or ``test`` (20, none).

    The ground truth is read from ``two_view_training_gt/<scene>/`` or, if it was unpacked into the
    scene folders, from ``two_view_training/<scene>/``.
    """

    name = "eth3d"

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 noc: bool = False) -> None:
        layout = "root/{two_view_training,two_view_training_gt,two_view_test}/<scene>/{im0.png,im1.png,disp0GT.pfm}"
        if root is None:
            raise EdgeStereoError("eth3d needs root: the folder holding two_view_training/ etc.")
        root = require_folder(Path(root), layout)
        if split not in ("train", "test"):
            raise EdgeStereoError(f"eth3d: unknown split {split!r}; choose train or test")
        folder = require_folder(root / ("two_view_training" if split == "train" else "two_view_test"), layout)
        records = []
        for scene in _scenes(folder, layout):
            truth = None
            if split == "train":
                truth = root / "two_view_training_gt" / scene.name
                if not (truth / "disp0GT.pfm").is_file() and (scene / "disp0GT.pfm").is_file():
                    truth = scene
            records.append(PairRecord(
                left=scene / "im0.png", right=scene / "im1.png", disp=truth / "disp0GT.pfm" if truth else None,
                mask=truth / "mask0nocc.png" if truth and noc else None, calib=scene / "calib.txt",
                extra={"scene": scene.name}))
        check_records_exist(records, str(folder))
        super().__init__(records, transform, noc=noc)
