"""SceneFlow (Mayer et al. 2016): FlyingThings3D, Driving and Monkaa, as published.

Layout (``root``)::

    FlyingThings3D/frames_finalpass/{TRAIN,TEST}/{A,B,C}/0000/{left,right}/0006.png
    FlyingThings3D/disparity/{TRAIN,TEST}/{A,B,C}/0000/{left,right}/0006.pfm
    Driving/frames_finalpass/{15mm,35mm}_focallength/scene_{forwards,backwards}/{fast,slow}/{left,right}/0001.png
    Driving/disparity/...                          (same tree, .pfm)
    Monkaa/frames_finalpass/<scene>/{left,right}/0000.png
    Monkaa/disparity/<scene>/{left,right}/0000.pfm
    SceneFlow_finalpass_train.txt, SceneFlow_finalpass_test.txt   (optional list files)

The usual split: ``train`` = FlyingThings3D TRAIN + Driving + Monkaa, ``test`` = FlyingThings3D TEST.
``frames_cleanpass`` is read with ``passes="cleanpass"``. A list file (``list_file=``) names one
"left right disparity" triple per line, relative to ``root``, and replaces the folder scan.
"""

from __future__ import annotations

from pathlib import Path

from edgestereo.data.datasets._base import PairRecord, PairStereoDataset, Transform, check_records_exist, require_folder
from edgestereo.errors import EdgeStereoError

__all__ = ["SceneFlow"]

SUBSETS = ("FlyingThings3D", "Driving", "Monkaa")
LAYOUT = ("root/{FlyingThings3D,Driving,Monkaa}/{frames_finalpass,frames_cleanpass,disparity}/… "
          "(see the README section 'Data sets')")


def _swap_side(path: Path, side: str) -> Path:
    """The same file for the other camera: the last ``left`` folder in the path becomes ``side``."""
    parts = list(path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "left":
            parts[i] = side
            return Path(*parts)
    raise EdgeStereoError(f"{path}: expected a 'left' folder in the path of a SceneFlow left image")


class SceneFlow(PairStereoDataset):
    """SceneFlow samples with ``disp`` from the PFM files (and ``disp_right`` with ``right_disparity``).

    root: the folder holding FlyingThings3D/, Driving/, Monkaa/. split: ``train`` or ``test``.
    passes: ``finalpass`` (rendered with motion blur and lens effects) or ``cleanpass``.
    subsets: which of the three to use (default: those present; ``test`` has only FlyingThings3D).
    list_file: a "left right disparity" list (absolute, or relative to ``root``) instead of a scan.
    """

    name = "sceneflow"

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 passes: str = "finalpass", subsets: list[str] | None = None, list_file: str | Path | None = None,
                 right_disparity: bool = False) -> None:
        if root is None:
            raise EdgeStereoError("sceneflow needs root: the folder holding FlyingThings3D/, Driving/, Monkaa/")
        root = require_folder(Path(root), LAYOUT)
        if split not in ("train", "test"):
            raise EdgeStereoError(f"sceneflow: unknown split {split!r}; choose train or test")
        if passes not in ("finalpass", "cleanpass"):
            raise EdgeStereoError(f"sceneflow: unknown passes {passes!r}; choose finalpass or cleanpass")
        self.root, self.split, self.passes = root, split, passes
        if list_file is not None:
            records = self._from_list(Path(list_file), right_disparity)
        else:
            records = self._scan(subsets, right_disparity)
        check_records_exist(records, str(list_file or root))
        super().__init__(records, transform)

    def _record(self, left: Path, disparity: Path, right_disparity: bool, subset: str) -> PairRecord:
        return PairRecord(left=left, right=_swap_side(left, "right"), disp=disparity,
                          disp_right=_swap_side(disparity, "right") if right_disparity else None,
                          extra={"subset": subset})

    def _scan(self, subsets: list[str] | None, right_disparity: bool) -> list[PairRecord]:
        if subsets is None:
            present = [s for s in SUBSETS if (self.root / s).is_dir()]
            subsets = ["FlyingThings3D"] if self.split == "test" else present
            if not present:
                require_folder(self.root / SUBSETS[0], LAYOUT)
        unknown = sorted(set(subsets) - set(SUBSETS))
        if unknown:
            raise EdgeStereoError(f"sceneflow: unknown subset(s) {', '.join(unknown)}; known: {', '.join(SUBSETS)}")
        if self.split == "test" and subsets != ["FlyingThings3D"]:
            raise EdgeStereoError("sceneflow: the test split is FlyingThings3D TEST only")
        records: list[PairRecord] = []
        for subset in subsets:
            base = require_folder(self.root / subset, LAYOUT)
            frames = require_folder(base / f"frames_{self.passes}", LAYOUT)
            disparity = require_folder(base / "disparity", LAYOUT)
            if subset == "FlyingThings3D":
                folder = "TRAIN" if self.split == "train" else "TEST"
                frames = require_folder(frames / folder, LAYOUT)
                disparity = require_folder(disparity / folder, LAYOUT)
            lefts = sorted([*frames.rglob("left/*.png"), *frames.rglob("left/*.webp")])
            if not lefts:
                raise EdgeStereoError(f"{frames}: no left/*.png images found; expected the layout {LAYOUT}")
            for left in lefts:
                relative = left.relative_to(frames).with_suffix(".pfm")
                records.append(self._record(left, disparity / relative, right_disparity, subset))
        return records

    def _from_list(self, list_file: Path, right_disparity: bool) -> list[PairRecord]:
        path = list_file if list_file.is_absolute() else self.root / list_file
        if not path.is_file():
            raise EdgeStereoError(f"{path}: list file not found")
        records = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise EdgeStereoError(f"{path}:{number}: expected 'left right disparity', got {line.strip()!r}")
            left, right, disparity = (self.root / f for f in fields)
            records.append(PairRecord(left=left, right=right, disp=disparity,
                                      disp_right=_swap_side(disparity, "right") if right_disparity else None,
                                      extra={"subset": Path(fields[0]).parts[0]}))
        if not records:
            raise EdgeStereoError(f"{path}: list file names no samples")
        return records
