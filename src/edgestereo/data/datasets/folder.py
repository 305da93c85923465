"""A generic folder of pairs: ``left/``, ``right/`` and optional ``disp/`` (and ``disp_right/``),
matched by file stem, in any image format OpenCV reads and any disparity format of
:func:`edgestereo.data.io.read_disparity` (``.pfm``, KITTI 16-bit ``.png``, ``.npy``).

Layout (``root``, or ``root/<split>`` when that folder exists)::

    left/0001.png   right/0001.png   disp/0001.pfm   [disp_right/0001.pfm]
"""

from __future__ import annotations

from pathlib import Path

from edgestereo.data.datasets._base import IMAGE_SUFFIXES, PairRecord, PairStereoDataset, Transform, require_folder
from edgestereo.errors import EdgeStereoError

__all__ = ["StereoFolder", "files_by_stem"]

DISPARITY_SUFFIXES = (".pfm", ".png", ".npy")
LAYOUT = "root/{left,right}/<name>.<image> with optional root/disp/<name>.{pfm,png,npy}"


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """{stem: path} of the files in ``folder`` with one of ``suffixes``; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise EdgeStereoError(f"{folder}: two files named {path.stem}.*: {found[path.stem].name}, {path.name}")
            found[path.stem] = path
    return found


def _unmatched(names: list[str], folder: Path) -> str:
    first = ", ".join(names[:3])
    more = f" (and {len(names) - 3} more)" if len(names) > 3 else ""
    return f"{folder}: no file for {len(names)} left image(s): {first}{more}"


class StereoFolder(PairStereoDataset):
    """Pairs from ``left/`` and ``right/`` (and ``disp/``) with the same file stem."""

    name = "folder"

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        if root is None:
            raise EdgeStereoError("folder needs root: the folder holding left/ and right/")
        root = require_folder(Path(root), LAYOUT)
        if (root / split / "left").is_dir():
            root = root / split
        lefts = files_by_stem(require_folder(root / "left", LAYOUT), IMAGE_SUFFIXES)
        if not lefts:
            raise EdgeStereoError(f"{root / 'left'}: no images; expected the layout {LAYOUT}")
        rights = files_by_stem(require_folder(root / "right", LAYOUT), IMAGE_SUFFIXES)
        optional = {}
        for role in ("disp", "disp_right"):
            folder = root / role
            if folder.is_dir():
                optional[role] = files_by_stem(folder, DISPARITY_SUFFIXES)
        for role, table in (("right", rights), *optional.items()):
            missing = [stem for stem in lefts if stem not in table]
            if missing:
                raise EdgeStereoError(_unmatched(missing, root / role))
        records = [PairRecord(left=path, right=rights[stem], disp=optional.get("disp", {}).get(stem),
                              disp_right=optional.get("disp_right", {}).get(stem), extra={"name": stem})
                   for stem, path in lefts.items()]
        self.root = root
        super().__init__(records, transform)
