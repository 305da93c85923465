"""Reading a Rerun recording back with the SDK, for the tests of ``--rerun`` and the logger."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: skips a test where the optional extra (rerun-sdk) is not installed.
needs_rerun = pytest.mark.skipif(importlib.util.find_spec("rerun") is None,
                                 reason="the rerun extra is not installed (pip install 'edgestereo[rerun]')")
#: what every frame logs, and what a calibrated frame adds.
FRAME_ENTITIES = {"/left", "/right", "/disparity", "/latency_ms"}
CALIBRATED_ENTITIES = {"/world/camera", "/world/camera/depth", "/world/points"}


def read_recording(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """entity path → its rows (column → value), in frame order; static rows first; timestamps in ns.
    The SDK's own entities (``/__properties``) are left out."""
    import pyarrow as pa
    from rerun.chunk import RrdReader

    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in RrdReader(path).stream().to_chunks():
        if not chunk.entity_path.startswith("/__"):
            batch = chunk.to_record_batch()
            columns = [column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column
                       for column in batch.columns]
            rows[chunk.entity_path].extend(pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist())
    return {entity: sorted(found, key=lambda row: row.get("frame", -1)) for entity, found in rows.items()}


def frames(rows: list[dict[str, Any]]) -> list[int]:
    """The frame numbers of an entity's rows."""
    return [row["frame"] for row in rows]


def image_size(row: dict[str, Any], archetype: str = "Image") -> tuple[int, int]:
    """(W, H) of an Image or DepthImage row."""
    layout = row[f"{archetype}:format"][0]
    return layout["width"], layout["height"]


def rgb(row: dict[str, Any]) -> np.ndarray:
    """The (H,W,3) uint8 pixels of an RGB Image row."""
    width, height = image_size(row)
    return np.asarray(row["Image:buffer"][0], np.uint8).reshape(height, width, 3)


def points(row: dict[str, Any]) -> np.ndarray:
    """The (N,3) positions of a Points3D row."""
    return np.asarray(row["Points3D:positions"], np.float32).reshape(-1, 3)
