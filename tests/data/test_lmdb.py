"""LMDB packs return exactly what the source data set returns; packing resumes; damage is reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgestereo.data import collate_stereo, create_dataset
from edgestereo.data import lmdb as packs
from edgestereo.data.io import write_image, write_pfm
from edgestereo.errors import EdgeStereoError

SYNTHETIC = {"num": 5, "size": [40, 80], "max_disp": 12, "seed": 4}


def assert_same_samples(first, second) -> None:
    assert len(first) == len(second)
    for index in range(len(first)):
        a, b = first[index], second[index]
        assert a.keys() == b.keys()
        for key, value in a.items():
            if key == "meta":
                assert value == b[key]
            else:
                assert value.dtype == b[key].dtype and value.shape == b[key].shape
                np.testing.assert_array_equal(value, b[key])


def write_folder(root) -> None:
    rng = np.random.default_rng(0)
    for stem in ("p", "q", "r"):
        write_image(root / "left" / f"{stem}.png", rng.integers(0, 256, (10, 14, 3), dtype=np.uint8))
        write_image(root / "right" / f"{stem}.png", rng.integers(0, 256, (10, 14, 3), dtype=np.uint8))
        disp = rng.uniform(1, 5, (10, 14)).astype(np.float32)
        disp[2, 3] = np.nan
        write_pfm(root / "disp" / f"{stem}.pfm", disp)


@pytest.mark.parametrize("codec", ["png", "raw"])
def test_pack_of_files_reads_back_exactly_with_a_manifest(tmp_path, codec):
    write_folder(tmp_path / "src")
    manifest = packs.pack_dataset("folder", tmp_path / "pack", root=tmp_path / "src", image_codec=codec)
    assert manifest["count"] == 3 and manifest["complete"] and manifest["image_codec"] == codec
    on_disk = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert on_disk["dataset"] == "folder" and on_disk["split"] == "train"
    assert on_disk["sources"][1]["left"].endswith("left/q.png")
    assert_same_samples(create_dataset("folder", tmp_path / "src"), create_dataset("lmdb", tmp_path / "pack"))


def test_pack_of_generated_data_with_workers_and_reading_in_workers(tmp_path):
    packs.pack_dataset("synthetic", tmp_path, workers=2, **SYNTHETIC)
    packed = create_dataset("lmdb", tmp_path)
    assert_same_samples(create_dataset("synthetic", **SYNTHETIC), packed)
    # read in this process first, then in forked DataLoader workers
    loader = torch.utils.data.DataLoader(packed, batch_size=2, num_workers=2, collate_fn=collate_stereo)
    assert sum(batch["left"].shape[0] for batch in loader) == len(packed)


def test_interrupted_pack_is_refused_then_resumed(tmp_path, monkeypatch):
    monkeypatch.setattr(packs, "_BATCH", 2)
    seen = []

    def stop_after_first_batch(done, total):
        seen.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        packs.pack_dataset("synthetic", tmp_path, progress=stop_after_first_batch, **SYNTHETIC)
    with pytest.raises(EdgeStereoError, match=r"incomplete \(0 of 5\).*rerun"):
        create_dataset("lmdb", tmp_path)
    seen.clear()
    packs.pack_dataset("synthetic", tmp_path, progress=lambda done, total: seen.append(done), **SYNTHETIC)
    assert seen[0] == 2 and seen[-1] == 5  # the two entries already written were kept
    assert_same_samples(create_dataset("synthetic", **SYNTHETIC), create_dataset("lmdb", tmp_path))


def test_corrupt_entry_names_its_key(tmp_path):
    import lmdb

    packs.pack_dataset("synthetic", tmp_path, **SYNTHETIC)
    env = lmdb.open(str(tmp_path))
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(b"00000003"))
        value[-10] ^= 0xFF
        txn.put(b"00000003", bytes(value))
    env.close()
    dataset = create_dataset("lmdb", tmp_path)
    dataset[2]
    with pytest.raises(EdgeStereoError, match=r"entry 00000003 is corrupt \(checksum mismatch\)"):
        dataset[3]
    with pytest.raises(EdgeStereoError, match="entry 00000000 is corrupt"):
        packs.decode_sample(b"not an entry", "00000000")


def test_folder_that_is_not_a_pack(tmp_path):
    import lmdb

    with pytest.raises(EdgeStereoError, match=r"not an edgestereo pack \(no manifest.json\)"):
        create_dataset("lmdb", tmp_path)
    lmdb.open(str(tmp_path)).close()  # a plain LMDB environment
    with pytest.raises(EdgeStereoError, match="not an edgestereo pack"):
        create_dataset("lmdb", tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(EdgeStereoError, match="manifest format is not 'edgestereo-lmdb'"):
        create_dataset("lmdb", tmp_path)
    with pytest.raises(EdgeStereoError, match="folder not found"):
        create_dataset("lmdb", tmp_path / "missing")


def test_pack_refuses_to_overwrite_other_things(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(EdgeStereoError, match="not empty and is not an edgestereo pack"):
        packs.pack_dataset("synthetic", tmp_path, **SYNTHETIC)
    packs.pack_dataset("synthetic", tmp_path / "pack", **SYNTHETIC)
    with pytest.raises(EdgeStereoError, match="made with other arguments"):
        packs.pack_dataset("synthetic", tmp_path / "pack", **{**SYNTHETIC, "seed": 5})
