"""The data-set registry: ``create_dataset(name, root, split, transform, **opts)`` and ``list_datasets()``.

Each layout lives in its own module, imported on first use (``lmdb`` only when a pack is read).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from pathlib import Path
from typing import Any

from edgestereo.data.datasets._base import PairRecord, PairStereoDataset, StereoDataset
from edgestereo.errors import EdgeStereoError

__all__ = [
    "DATASETS",
    "PairRecord",
    "PairStereoDataset",
    "StereoDataset",
    "create_dataset",
    "dataset_class",
    "list_datasets",
]

#: name → (module, class, one-line description)
DATASETS: dict[str, tuple[str, str, str]] = {
    "sceneflow": ("edgestereo.data.datasets.sceneflow", "SceneFlow",
                  "SceneFlow: FlyingThings3D, Driving, Monkaa (finalpass/cleanpass, PFM, list files)"),
    "kitti2012": ("edgestereo.data.datasets.kitti", "Kitti2012", "KITTI stereo 2012 (colored_0/1, disp_occ/noc)"),
    "kitti2015": ("edgestereo.data.datasets.kitti", "Kitti2015", "KITTI stereo 2015 (image_2/3, disp_occ_0/noc_0)"),
    "middlebury": ("edgestereo.data.datasets.middlebury", "Middlebury2014",
                   "Middlebury 2014 scenes (-perfect/-imperfect, im1E/im1L)"),
    "middeval3": ("edgestereo.data.datasets.middlebury", "MiddEval3", "Middlebury MiddEval3 (training/test F, H, Q)"),
    "eth3d": ("edgestereo.data.datasets.middlebury", "ETH3D", "ETH3D low-res two-view"),
    "folder": ("edgestereo.data.datasets.folder", "StereoFolder", "left/, right/, optional disp/ matched by name"),
    "synthetic": ("edgestereo.data.synthetic.dataset", "SyntheticStereo",
                  "procedural pairs with exact disparity, on the fly or written by `edgestereo synth`"),
    "lmdb": ("edgestereo.data.lmdb", "LMDBStereo", "a data set packed by `edgestereo pack`"),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`create_dataset`, sorted."""
    return sorted(DATASETS)


def dataset_class(name: str) -> type[StereoDataset]:
    """The class behind ``name``; the error lists the known names and close matches."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EdgeStereoError(f"unknown data set {name!r}.{hint} Known: {', '.join(list_datasets())}")
    module, cls, _ = DATASETS[name]
    return getattr(importlib.import_module(module), cls)


def create_dataset(name: str, root: str | Path | None = None, split: str = "train", transform=None,
                   **opts: Any) -> StereoDataset:
    """Build a data set. ``root``: its folder (None for on-the-fly ``synthetic``); ``split``: ``train``
    or ``test`` (``val`` too for synthetic); ``transform``: called on every sample dict; ``opts``:
    the options of the layout (see each class, e.g. ``noc=True`` or ``passes="cleanpass"``).
    """
    cls = dataset_class(name)
    parameters = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    known = [p for p in parameters if p not in ("self", "root", "split", "transform")]
    unknown = sorted(set(opts) - set(known))
    if unknown and not takes_any:
        raise EdgeStereoError(f"{name}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}")
    return cls(root, split=split, transform=transform, **opts)
