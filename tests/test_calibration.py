"""Calibration files (OpenCV YAML/JSON rigs, rectified intrinsics, calib.txt), rectification, and
`edgestereo calibrate` on chessboard pairs rendered with known intrinsics and baseline."""

import json

import cv2
import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.calibration import StereoRig, StereoSetup, find_chessboard, read_calibration, write_calibration
from edgestereo.data.io import write_image
from edgestereo.errors import EdgeStereoError, ReadError

SIZE = (640, 480)
K = np.array([[520.0, 0, 319.5], [0, 520.0, 239.5], [0, 0, 1]])
BASELINE = 0.12  # metres
BOARD = (9, 6)
SQUARE = 0.025
# The right camera is turned by 1° about y and 0.3° about z, so rectification has work to do.
R_RIGHT = cv2.Rodrigues(np.radians([0.0, 1.0, 0.3]))[0]
T_RIGHT = -R_RIGHT @ np.array([BASELINE, 0.0, 0.0])  # right optical centre at +BASELINE along the left x axis


def render_chessboard(K, R_cam, t_cam, R_board, t_board, size, pixels_per_square=40, supersample=2):
    """(H,W,3) uint8 view of a BOARD chessboard (white margin, grey background) through a pinhole
    camera without distortion. Board frame: x along rows of corners, origin at the first inner
    corner, z = 0 on the board; the camera sees R_cam (R_board X + t_board) + t_cam."""
    cols, rows = BOARD
    margin = pixels_per_square
    texture = np.full(((rows + 1) * pixels_per_square + 2 * margin, (cols + 1) * pixels_per_square + 2 * margin),
                      255, np.uint8)
    for j in range(rows + 1):
        for i in range((j % 2), cols + 1, 2):
            y, x = margin + j * pixels_per_square, margin + i * pixels_per_square
            texture[y : y + pixels_per_square, x : x + pixels_per_square] = 0
    metres_per_pixel = SQUARE / pixels_per_square
    origin = margin + pixels_per_square  # texture pixel of the first inner corner
    texture_to_board = np.array([[metres_per_pixel, 0, -origin * metres_per_pixel],
                                 [0, metres_per_pixel, -origin * metres_per_pixel], [0, 0, 1]])
    rotation, translation = R_cam @ R_board, R_cam @ t_board + t_cam
    K_big = K.copy()
    K_big[:2, :2] *= supersample
    K_big[:2, 2] = (K[:2, 2] + 0.5) * supersample - 0.5
    homography = K_big @ np.column_stack([rotation[:, 0], rotation[:, 1], translation]) @ texture_to_board
    w, h = size
    big = cv2.warpPerspective(texture, homography, (w * supersample, h * supersample), flags=cv2.INTER_LINEAR,
                              borderValue=128)
    grey = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
    return np.repeat(grey[:, :, None], 3, axis=2)


def chessboard_pairs(count=8, seed=0):
    rng = np.random.default_rng(seed)
    centre = np.array([(BOARD[0] - 1) * SQUARE / 2, (BOARD[1] - 1) * SQUARE / 2, 0.0])
    pairs = []
    for _ in range(count):
        R_board = cv2.Rodrigues(np.radians(rng.uniform(-25, 25, 3) * [1, 1, 0.4]))[0]
        position = np.array([rng.uniform(-0.05, 0.15), rng.uniform(-0.08, 0.08), rng.uniform(0.55, 0.9)])
        t_board = position - R_board @ centre
        pairs.append((render_chessboard(K, np.eye(3), np.zeros(3), R_board, t_board, SIZE),
                      render_chessboard(K, R_RIGHT, T_RIGHT, R_board, t_board, SIZE)))
    return pairs


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """`edgestereo calibrate` run once on 8 rendered pairs plus one without a board."""
    root = tmp_path_factory.mktemp("calib")
    pairs = chessboard_pairs()
    pairs.append((np.full((SIZE[1], SIZE[0], 3), 128, np.uint8),) * 2)
    for i, (left, right) in enumerate(pairs):
        write_image(root / f"left_{i:02d}.png", left)
        write_image(root / f"right_{i:02d}.png", right)
    code = main(["calibrate", "--left", str(root / "left_*.png"), "--right", str(root / "right_*.png"),
                 "--board", "9x6", "--square", str(SQUARE), "--out", str(root / "rig.yaml"),
                 "--preview", str(root / "preview")])
    assert code == 0
    return root, pairs


def test_calibrate_recovers_intrinsics_and_baseline(calibrated, capsys):
    root, _ = calibrated
    setup = read_calibration(root / "rig.yaml")
    rig = setup.rig
    assert setup.unit == "m" and rig.image_size == SIZE
    # Tolerances: 1 % on focal lengths and baseline, 3 px on principal points, 0.2° on the relative rotation.
    for camera in (rig.K1, rig.K2):
        assert camera[0, 0] == pytest.approx(K[0, 0], rel=0.01)
        assert camera[1, 1] == pytest.approx(K[1, 1], rel=0.01)
        assert camera[0, 2] == pytest.approx(K[0, 2], abs=3.0)
        assert camera[1, 2] == pytest.approx(K[1, 2], abs=3.0)
    assert rig.baseline == pytest.approx(BASELINE, rel=0.01)
    assert rig.T[0] < 0
    angle_error = np.degrees(np.linalg.norm(cv2.Rodrigues(rig.R @ R_RIGHT.T)[0]))
    assert angle_error < 0.2


def test_calibrate_reports_the_pair_without_a_board(calibrated):
    root, _ = calibrated
    text = (root / "rig.yaml").read_text()
    assert "rms" in text and "P2" in text
    previews = sorted(p.name for p in (root / "preview").iterdir())
    assert len(previews) == 8 and "left_08_rectified.png" not in previews


def test_rectification_puts_matching_corners_on_one_row(calibrated):
    root, pairs = calibrated
    rectifier = read_calibration(root / "rig.yaml").rectifier(SIZE)
    assert rectifier.calibration.baseline == pytest.approx(BASELINE, rel=0.01)
    assert rectifier.calibration.doffs == pytest.approx(0.0, abs=1e-6)
    for left, right in pairs[:3]:
        corners = [find_chessboard(view, BOARD) for view in rectifier(left, right)]
        assert corners[0] is not None and corners[1] is not None
        assert np.abs(corners[0][:, 0, 1] - corners[1][:, 0, 1]).max() < 0.5
        # The boards stand 0.45–1.0 m away, so disparity = fx·B/Z lies between fx·B/1.0 and fx·B/0.45.
        disparity = corners[0][:, 0, 0] - corners[1][:, 0, 0]
        focal_baseline = rectifier.calibration.fx * rectifier.calibration.baseline
        assert focal_baseline / 1.0 < disparity.min() and disparity.max() < focal_baseline / 0.45


def test_calibrate_needs_enough_boards(tmp_path, capsys):
    grey = np.full((120, 160, 3), 128, np.uint8)
    for i in range(3):
        write_image(tmp_path / f"l{i}.png", grey)
        write_image(tmp_path / f"r{i}.png", grey)
    code = main(["calibrate", "--left", str(tmp_path / "l*.png"), "--right", str(tmp_path / "r*.png"),
                 "--board", "9x6", "--square", "0.025", "--out", str(tmp_path / "rig.yaml")])
    assert code == 2
    err = capsys.readouterr().err
    assert "found in 0 pair(s)" in err and "no 9x6 chessboard" in err
    assert not (tmp_path / "rig.yaml").exists()


# --------------------------------------------------------------------------- files
def _rig(**changes):
    values = dict(K1=K, D1=np.zeros(5), K2=K, D2=np.zeros(5), R=np.eye(3), T=np.array([-0.1, 0, 0]),
                  image_size=(128, 96))
    values.update(changes)
    return StereoRig(**values)


def test_reads_the_yaml_opencv_stereo_calib_writes(tmp_path):
    # OpenCV's stereo_calib sample names the camera matrices M1/M2; cv::FileStorage adds its own header and tags.
    storage = cv2.FileStorage(str(tmp_path / "intrinsics.yml"), cv2.FILE_STORAGE_WRITE)
    for key, value in (("M1", K), ("D1", np.zeros((1, 5))), ("M2", K * [[1.01], [1.01], [1]]),
                       ("D2", np.array([[0.01, 0, 0, 0, 0]])), ("R", np.eye(3)), ("T", np.array([[-60.0], [0], [0]]))):
        storage.write(key, value)
    storage.write("image_width", 128)
    storage.write("image_height", 96)
    storage.release()
    assert (tmp_path / "intrinsics.yml").read_text().startswith("%YAML")
    setup = read_calibration(tmp_path / "intrinsics.yml")
    assert setup.image_size == (128, 96) and setup.rectified is None
    np.testing.assert_allclose(setup.rig.K2[0, 0], K[0, 0] * 1.01)
    assert setup.rig.D2.shape == (5,) and setup.rig.baseline == pytest.approx(60.0)


def test_plain_json_rig_with_image_size_list(tmp_path):
    (tmp_path / "rig.json").write_text(json.dumps({
        "K1": K.tolist(), "D1": [0, 0, 0, 0], "K2": K.ravel().tolist(), "D2": [0, 0, 0, 0, 0],
        "R": np.eye(3).tolist(), "T": [-0.1, 0, 0], "image_size": [128, 96], "unit": "m"}))
    setup = read_calibration(tmp_path / "rig.json")
    assert setup.unit == "m" and setup.rig.D1.shape == (4,)
    rectifier = setup.rectifier((128, 96))
    # An ideal rig (same cameras, no rotation, no distortion) rectifies to itself.
    assert rectifier.calibration.fx == pytest.approx(520.0, rel=1e-3)
    assert rectifier.calibration.baseline == pytest.approx(0.1)
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    left, _ = rectifier(image, image)
    assert np.abs(left[5:-5, 5:-5].astype(int) - image[5:-5, 5:-5]).mean() < 2


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_write_then_read_round_trip(tmp_path, suffix):
    rig = _rig(D1=np.array([0.1, -0.02, 0, 0, 0.001]))
    rectifier = rig.rectify(rig.image_size)
    write_calibration(tmp_path / f"rig{suffix}", rig, unit="m", rectifier=rectifier, extra={"rms": 0.2})
    back = read_calibration(tmp_path / f"rig{suffix}")
    for name in ("K1", "D1", "K2", "D2", "R", "T"):
        np.testing.assert_allclose(getattr(back.rig, name), getattr(rig, name))
    assert back.image_size == (128, 96) and back.unit == "m"


def test_rectified_intrinsics_json_like_oakd_tools(tmp_path):
    (tmp_path / "oakd.json").write_text(json.dumps({"fx": 451.2, "fy": 451.0, "cx": 320.1, "cy": 200.3,
                                                     "baseline": 7.5, "unit": "cm", "width": 640, "height": 400}))
    setup = read_calibration(tmp_path / "oakd.json")
    assert setup.rig is None and setup.unit == "cm" and setup.image_size == (640, 400)
    rectifier = setup.rectifier((640, 400))
    assert rectifier.maps is None and rectifier.calibration.baseline == 7.5
    image = np.zeros((400, 640, 3), np.uint8)
    assert rectifier(image, image)[0] is image
    with pytest.raises(EdgeStereoError, match="is for 640x400 frames, these are 320x200"):
        setup.rectifier((320, 200))


def test_middlebury_calib_txt_is_a_rectified_setup(tmp_path):
    (tmp_path / "calib.txt").write_text("cam0=[400 0 63.5; 0 400 23.5; 0 0 1]\ncam1=[400 0 65.5; 0 400 23.5; 0 0 1]\n"
                                        "doffs=2\nbaseline=100\nwidth=128\nheight=48\nndisp=32\n")
    setup = read_calibration(tmp_path / "calib.txt")
    assert setup.unit == "mm" and setup.rectified.doffs == 2 and setup.image_size == (128, 48)


@pytest.mark.parametrize("content, message", [
    ({"K1": K.tolist(), "D1": [0] * 5}, "missing K2, D2, R, T"),
    ({"fx": 400}, "not a stereo calibration"),
    ({"fx": 400, "cx": 1, "cy": 1, "baseline": -1}, "baseline must be positive"),
    ({"K1": K.tolist(), "D1": [0, 0, 0], "K2": K.tolist(), "D2": [0] * 5, "R": np.eye(3).tolist(),
      "T": [-1, 0, 0]}, "4, 5, 8, 12 or 14 distortion coefficients"),
    ([1, 2, 3], "expected a mapping"),
])
def test_bad_calibration_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ReadError, match=message) as info:
        read_calibration(path)
    assert str(path) in str(info.value)


def test_unreadable_calibration_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("K1: [1, 2\n")
    with pytest.raises(ReadError, match="not valid YAML"):
        read_calibration(tmp_path / "bad.yaml")
    with pytest.raises(ReadError, match="file not found"):
        read_calibration(tmp_path / "none.json")
    (tmp_path / "calib").write_text("x=1\n")  # neither JSON nor YAML: read as a Middlebury calib.txt
    with pytest.raises(ReadError, match="calibration is missing keys: cam0"):
        read_calibration(tmp_path / "calib")


def test_vertical_and_swapped_rigs_are_refused():
    with pytest.raises(EdgeStereoError, match="stacked vertically"):
        _rig(T=np.array([0, -0.1, 0])).rectify((128, 96))
    with pytest.raises(EdgeStereoError, match="swapped"):
        _rig(T=np.array([0.1, 0, 0])).rectify((128, 96))


def test_rectifier_checks_the_frame_size():
    rectifier = StereoSetup(rig=_rig()).rectifier((128, 96))
    with pytest.raises(EdgeStereoError, match="left frame is 100x96, the calibration is for 128x96"):
        rectifier(np.zeros((96, 100, 3), np.uint8), np.zeros((96, 100, 3), np.uint8))
