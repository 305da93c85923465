"""Every published layout, written in miniature into a temporary folder, read through the registry."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgestereo.data import create_dataset, list_datasets
from edgestereo.data.io import (
    MiddleburyCalib,
    write_calib_txt,
    write_image,
    write_kitti_disparity,
    write_npy,
    write_pfm,
)
from edgestereo.errors import EdgeStereoError

H, W = 8, 12

#: every array the layout writers below wrote, by resolved path: what a loader must give back
WRITTEN: dict[Path, np.ndarray] = {}


def _recorded(write):
    def record(path, array, *args, **kwargs):
        WRITTEN[Path(path).resolve()] = np.array(array)
        return write(path, array, *args, **kwargs)
    return record


write_image, write_pfm, write_npy, write_kitti_disparity = (
    _recorded(w) for w in (write_image, write_pfm, write_npy, write_kitti_disparity))


def _image(seed: int, height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _disparity(value: float, height: int = H, width: int = W) -> np.ndarray:
    disp = np.full((height, width), value, np.float32)
    disp[0, 0] = np.nan  # unknown ground truth
    disp[0, 1] = np.inf
    return disp


def _pair_files(folder: Path, left: str, right: str, seed: int) -> None:
    write_image(folder / left, _image(seed))
    write_image(folder / right, _image(seed + 1000))


def _calib(ndisp: int = 16) -> MiddleburyCalib:
    cam = np.array([[100.0, 0, 6], [0, 100.0, 4], [0, 0, 1]])
    return MiddleburyCalib(cam0=cam, cam1=cam, doffs=1.5, baseline=120.0, width=W, height=H, ndisp=ndisp)


def write_sceneflow(root: Path, frames: str = "frames_finalpass") -> None:
    trees = {
        "FlyingThings3D": ["TRAIN/A/0000", "TRAIN/B/0001", "TEST/A/0002"],
        "Driving": ["15mm_focallength/scene_forwards/fast"],
        "Monkaa": ["a_rain_of_stones_x2"],
    }
    seed = 0
    for subset, folders in trees.items():
        for folder in folders:
            for frame in ("0006", "0007"):
                seed += 1
                for side in ("left", "right"):
                    value = seed + (side == "right")
                    write_image(root / subset / frames / folder / side / f"{frame}.png", _image(value))
                    write_pfm(root / subset / "disparity" / folder / side / f"{frame}.pfm", _disparity(value))


def write_kitti(root: Path, year: int) -> None:
    names = {2012: ("colored_0", "colored_1", "disp_occ", "disp_noc", "calib"),
             2015: ("image_2", "image_3", "disp_occ_0", "disp_noc_0", "calib_cam_to_cam")}[year]
    left, right, occ, noc, calib = names
    keys = ("P2", "P3") if year == 2012 else ("P_rect_02", "P_rect_03")
    for split in ("training", "testing"):
        for frame in ("000000", "000001"):
            _pair_files(root / split, f"{left}/{frame}_10.png", f"{right}/{frame}_10.png", int(frame) + 5)
            if split == "training":
                dense = np.full((H, W), 20.5, np.float32)
                sparse = dense.copy()
                sparse[::2] = np.nan  # KITTI stores unknown pixels as 0
                write_kitti_disparity(root / split / occ / f"{frame}_10.png", dense)
                write_kitti_disparity(root / split / noc / f"{frame}_10.png", sparse)
                text = (f"{keys[0]}: 700 0 600 44.8 0 700 180 0.2 0 0 1 0.003\n"
                        f"{keys[1]}: 700 0 600 -336 0 700 180 2.3 0 0 1 0.003\n")
                (root / split / calib).mkdir(parents=True, exist_ok=True)
                (root / split / calib / f"{frame}.txt").write_text(text)


def _mask(height: int = H, width: int = W) -> np.ndarray:
    mask = np.full((height, width), 255, np.uint8)
    mask[:, :3] = 128  # occluded
    return mask


def write_middlebury2014(root: Path) -> None:
    for scene in ("Adirondack-perfect", "Adirondack-imperfect", "Jadeplant-perfect"):
        folder = root / scene
        for name in ("im0", "im1", "im1E", "im1L"):
            write_image(folder / f"{name}.png", _image(zlib.crc32(name.encode()) % 997))
        write_pfm(folder / "disp0.pfm", _disparity(7.0))
        write_pfm(folder / "disp1.pfm", _disparity(6.0))
        write_calib_txt(folder / "calib.txt", _calib())


def write_middeval3(root: Path) -> None:
    for resolution in ("H", "Q"):
        for scene in ("Adirondack", "Motorcycle"):
            train = root / f"training{resolution}" / scene
            _pair_files(train, "im0.png", "im1.png", 3)
            write_pfm(train / "disp0GT.pfm", _disparity(9.0))
            write_image(train / "mask0nocc.png", _mask())
            write_calib_txt(train / "calib.txt", _calib())
            test = root / f"test{resolution}" / scene
            _pair_files(test, "im0.png", "im1.png", 4)
            write_calib_txt(test / "calib.txt", _calib())


def write_eth3d(root: Path, gt_beside: bool = False) -> None:
    for scene in ("delivery_area_1l", "electro_1l"):
        folder = root / "two_view_training" / scene
        _pair_files(folder, "im0.png", "im1.png", 11)
        write_calib_txt(folder / "calib.txt", _calib())
        truth = folder if gt_beside else root / "two_view_training_gt" / scene
        write_pfm(truth / "disp0GT.pfm", _disparity(3.0))
        write_image(truth / "mask0nocc.png", _mask())
        _pair_files(root / "two_view_test" / scene, "im0.png", "im1.png", 12)


def write_folder(root: Path) -> None:
    for stem, fmt in (("a", ".pfm"), ("b", ".npy"), ("c", ".png")):
        _pair_files(root, f"left/{stem}.png", f"right/{stem}.jpg", ord(stem))
        disp = _disparity(4.0)
        if fmt == ".pfm":
            write_pfm(root / "disp" / f"{stem}.pfm", disp)
        elif fmt == ".npy":
            write_npy(root / "disp" / f"{stem}.npy", disp)
        else:
            write_kitti_disparity(root / "disp" / f"{stem}.png", disp)


def check_contract(sample: dict, name: str, has_right: bool = False) -> None:
    """The sample contract other modules code against."""
    for key in ("left", "right"):
        assert sample[key].dtype == np.uint8 and sample[key].ndim == 3 and sample[key].shape[2] == 3
    shape = sample["left"].shape[:2]
    assert sample["right"].shape[:2] == shape
    assert sample["disp"].dtype == np.float32 and sample["disp"].shape == shape
    assert sample["valid"].dtype == bool and sample["valid"].shape == shape
    assert (sample["disp"][~sample["valid"]] == 0).all()
    assert np.isfinite(sample["disp"]).all()
    assert ("disp_right" in sample) == has_right
    meta = sample["meta"]
    assert meta["dataset"] == name and isinstance(meta["index"], int)


#: data set → (writer, (left, right, disparity) path fragments of a training sample)
LAYOUTS = {
    "sceneflow": (write_sceneflow, ("/left/", "/right/", "/disparity/")),
    "kitti2012": (lambda root: write_kitti(root, 2012), ("/colored_0/", "/colored_1/", "/disp_occ/")),
    "kitti2015": (lambda root: write_kitti(root, 2015), ("/image_2/", "/image_3/", "/disp_occ_0/")),
    "middlebury": (write_middlebury2014, ("/im0.png", "/im1.png", "/disp0.pfm")),
    "middeval3": (write_middeval3, ("/im0.png", "/im1.png", "/disp0GT.pfm")),
    "eth3d": (write_eth3d, ("/im0.png", "/im1.png", "/disp0GT.pfm")),
    "folder": (write_folder, ("/left/", "/right/", "/disp/")),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_sample_returns_the_pixels_and_disparities_of_its_files(tmp_path, name):
    """Pixels compared with the arrays written, so a left/right swap, a flip or a wrong file fails."""
    writer, (left_part, right_part, disp_part) = LAYOUTS[name]
    writer(tmp_path)
    dataset = create_dataset(name, tmp_path)
    assert len(dataset) >= 2
    for index in range(len(dataset)):
        sample = dataset[index]
        files = {key: Path(path).resolve() for key, path in sample["meta"]["files"].items()}
        assert left_part in str(files["left"]) and right_part in str(files["right"]) and disp_part in str(files["disp"])
        np.testing.assert_array_equal(sample["left"], WRITTEN[files["left"]])
        if files["right"].suffix == ".jpg":  # lossy: the file as OpenCV decodes it, in RGB order
            np.testing.assert_array_equal(sample["right"], cv2.imread(str(files["right"]))[..., ::-1])
        else:
            np.testing.assert_array_equal(sample["right"], WRITTEN[files["right"]])
        truth = WRITTEN[files["disp"]].astype(np.float32)
        known = np.isfinite(truth) & (truth > 0)
        np.testing.assert_array_equal(sample["valid"], known)
        np.testing.assert_allclose(sample["disp"][known], truth[known], atol=1 / 256)


def test_registry_names_and_errors():
    assert set(list_datasets()) >= {"sceneflow", "kitti2012", "kitti2015", "middlebury", "middeval3", "eth3d",
                                    "folder", "synthetic", "lmdb"}
    with pytest.raises(EdgeStereoError, match=r"unknown data set 'kitti'.*kitti2012"):
        create_dataset("kitti")
    with pytest.raises(EdgeStereoError, match=r"unknown option\(s\) colour"):
        create_dataset("folder", "/nonexistent", colour=True)


def test_sceneflow_train_test_and_passes(tmp_path):
    write_sceneflow(tmp_path)
    train = create_dataset("sceneflow", tmp_path, "train")
    assert len(train) == 2 * 2 + 2 + 2  # FlyingThings3D TRAIN (2 folders × 2 frames), Driving, Monkaa
    sample = train[0]
    check_contract(sample, "sceneflow")
    assert not sample["valid"][0, 0] and not sample["valid"][0, 1]  # NaN and inf ground truth are invalid
    assert sample["disp"][0, 0] == 0 and sample["valid"][1:].all()
    assert sample["meta"]["files"]["disp"].endswith(".pfm") and sample["meta"]["subset"] == "FlyingThings3D"
    test = create_dataset("sceneflow", tmp_path, "test", right_disparity=True)
    assert len(test) == 2 and all("TEST" in test[i]["meta"]["files"]["left"] for i in range(2))
    check_contract(test[1], "sceneflow", has_right=True)
    assert test[1]["disp_right"][5, 5] == test[1]["disp"][5, 5] + 1
    with pytest.raises(EdgeStereoError, match="frames_cleanpass: folder not found"):
        create_dataset("sceneflow", tmp_path, passes="cleanpass")


def test_sceneflow_list_file(tmp_path):
    write_sceneflow(tmp_path)
    lines = ["FlyingThings3D/frames_finalpass/TRAIN/A/0000/left/0006.png "
             "FlyingThings3D/frames_finalpass/TRAIN/A/0000/right/0006.png "
             "FlyingThings3D/disparity/TRAIN/A/0000/left/0006.pfm", ""]
    (tmp_path / "SceneFlow_finalpass_train.txt").write_text("\n".join(lines))
    listed = create_dataset("sceneflow", tmp_path, list_file="SceneFlow_finalpass_train.txt")
    assert len(listed) == 1
    scanned = create_dataset("sceneflow", tmp_path)
    np.testing.assert_array_equal(listed[0]["disp"], scanned[0]["disp"])

    missing = [f"Monkaa/frames_finalpass/x/left/{i:04d}.png Monkaa/frames_finalpass/x/right/{i:04d}.png "
               f"Monkaa/disparity/x/left/{i:04d}.pfm" for i in range(4)]
    (tmp_path / "bad.txt").write_text("\n".join(missing))
    with pytest.raises(EdgeStereoError, match=r"bad.txt: 12 file\(s\) listed but not found: .*0000.png.*9 more"):
        create_dataset("sceneflow", tmp_path, list_file="bad.txt")


def test_missing_layout_names_the_first_missing_folder(tmp_path):
    with pytest.raises(EdgeStereoError, match=r"FlyingThings3D: folder not found; expected the layout root/"):
        create_dataset("sceneflow", tmp_path)
    (tmp_path / "training" / "colored_0").mkdir(parents=True)
    with pytest.raises(EdgeStereoError, match=r"training/colored_1: folder not found.*KITTI 2012"):
        create_dataset("kitti2012", tmp_path)
    with pytest.raises(EdgeStereoError, match=r"trainingH: folder not found"):
        create_dataset("middeval3", tmp_path)
    with pytest.raises(EdgeStereoError, match=r"two_view_training: folder not found"):
        create_dataset("eth3d", tmp_path)
    with pytest.raises(EdgeStereoError, match=r"no scene folders"):
        create_dataset("middlebury", tmp_path / "training")
    with pytest.raises(EdgeStereoError, match=r"left: folder not found"):
        create_dataset("folder", tmp_path)


@pytest.mark.parametrize("year", [2012, 2015])
def test_kitti_splits_sparse_ground_truth_and_calibration(tmp_path, year):
    write_kitti(tmp_path, year)
    name = f"kitti{year}"
    train = create_dataset(name, tmp_path)
    assert len(train) == 2
    sample = train[1]
    check_contract(sample, name)
    assert sample["valid"].all() and np.allclose(sample["disp"], 20.5)
    calib = sample["meta"]["calib"]
    assert calib["focal"] == 700 and calib["baseline"] == pytest.approx((44.8 + 336) / 700)
    noc = create_dataset(name, tmp_path, noc=True)[0]
    assert not noc["valid"][::2].any() and noc["valid"][1::2].all()
    test = create_dataset(name, tmp_path, "test")[0]
    check_contract(test, name)
    assert not test["valid"].any() and test["meta"]["has_gt"] is False


def test_middlebury2014_variants_and_calibration(tmp_path):
    write_middlebury2014(tmp_path)
    perfect = create_dataset("middlebury", tmp_path)
    assert [perfect[i]["meta"]["scene"] for i in range(len(perfect))] == ["Adirondack-perfect", "Jadeplant-perfect"]
    assert len(create_dataset("middlebury", tmp_path, variant="both")) == 3
    sample = create_dataset("middlebury", tmp_path, right_image="im1E", right_disparity=True)[0]
    check_contract(sample, "middlebury", has_right=True)
    assert sample["meta"]["files"]["right"].endswith("im1E.png")
    assert sample["meta"]["calib"] == {"focal": 100.0, "cx": 6.0, "cy": 4.0, "doffs": 1.5, "baseline": 120.0,
                                       "ndisp": 16, "baseline_unit": "mm"}
    with pytest.raises(EdgeStereoError, match="variant"):
        create_dataset("middlebury", tmp_path, variant="best")


def test_middeval3_resolutions_and_nonoccluded_mask(tmp_path):
    write_middeval3(tmp_path)
    train = create_dataset("middeval3", tmp_path, resolution="Q")
    assert len(train) == 2 and "trainingQ" in train[0]["meta"]["files"]["left"]
    check_contract(train[0], "middeval3")
    assert train[0]["valid"][:, :3].any()
    noc = create_dataset("middeval3", tmp_path, noc=True)[0]
    assert not noc["valid"][:, :3].any() and noc["valid"][1:, 3:].all()
    test = create_dataset("middeval3", tmp_path, "test")[0]
    assert not test["valid"].any() and "calib" in test["meta"]


@pytest.mark.parametrize("gt_beside", [False, True])
def test_eth3d_ground_truth_folder_or_beside(tmp_path, gt_beside):
    write_eth3d(tmp_path, gt_beside)
    train = create_dataset("eth3d", tmp_path, noc=True)
    assert len(train) == 2
    check_contract(train[0], "eth3d")
    assert train[0]["disp"][5, 5] == 3.0 and not train[0]["valid"][:, :3].any()
    assert len(create_dataset("eth3d", tmp_path, "test")) == 2


def test_folder_matches_by_stem_in_any_format(tmp_path):
    write_folder(tmp_path)
    folder = create_dataset("folder", tmp_path)
    assert [folder[i]["meta"]["name"] for i in range(3)] == ["a", "b", "c"]
    for i in range(3):
        check_contract(folder[i], "folder")
        assert folder[i]["disp"][4, 4] == pytest.approx(4.0) and not folder[i]["valid"][0, :2].any()
    (tmp_path / "left" / "d.png").write_bytes((tmp_path / "left" / "a.png").read_bytes())
    with pytest.raises(EdgeStereoError, match=r"right: no file for 1 left image\(s\): d"):
        create_dataset("folder", tmp_path)


def test_folder_without_disparity_has_no_ground_truth(tmp_path):
    _pair_files(tmp_path / "train", "left/x.png", "right/x.png", 1)
    sample = create_dataset("folder", tmp_path, "train")[0]
    check_contract(sample, "folder")
    assert not sample["valid"].any() and sample["meta"]["has_gt"] is False


def test_mismatched_sizes_within_a_sample_are_an_error(tmp_path):
    write_image(tmp_path / "left" / "a.png", _image(0))
    write_image(tmp_path / "right" / "a.png", _image(1, H, W + 2))
    with pytest.raises(EdgeStereoError, match=r"right/a.png: right image is 14x8 but the left image .* is 12x8"):
        create_dataset("folder", tmp_path)[0]
    write_image(tmp_path / "right" / "a.png", _image(1))
    write_pfm(tmp_path / "disp" / "a.pfm", _disparity(1.0, H + 1, W))
    with pytest.raises(EdgeStereoError, match=r"a.pfm: disparity is 12x9 but the images of this sample are 12x8"):
        create_dataset("folder", tmp_path)[0]


def test_index_out_of_range_and_negative_index(tmp_path):
    write_folder(tmp_path)
    folder = create_dataset("folder", tmp_path)
    assert folder[-1]["meta"]["index"] == 2
    with pytest.raises(IndexError):
        folder[3]
