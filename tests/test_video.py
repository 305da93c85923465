"""MP4 writing: atomic rename, odd sizes, size checks."""

import cv2
import numpy as np
import pytest

from edgestereo.errors import EdgeStereoError
from edgestereo.video import VideoWriter


def _read_all(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_frames_are_written_and_the_file_appears_only_when_closed(tmp_path):
    path = tmp_path / "v.mp4"
    video = VideoWriter(path, fps=5)
    for value in (0, 128, 255):
        video.write(np.full((47, 63, 3), value, np.uint8))
    assert not path.exists()  # still under its temporary name
    video.close()
    frames = _read_all(path)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)  # odd sizes padded by one black row/column
    assert abs(float(frames[1][:47, :63].mean()) - 128) < 8  # MPEG-4 is lossy
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_an_error_inside_the_block_still_finalises_the_frames_written(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path) as video:
        video.write(np.zeros((32, 32, 3), np.uint8))
        raise RuntimeError("stopped")
    assert len(_read_all(path)) == 1


def test_no_frame_no_file_and_checks(tmp_path):
    with VideoWriter(tmp_path / "empty.mp4"):
        pass
    assert not list(tmp_path.iterdir())
    with pytest.raises(EdgeStereoError, match=r"written as \.mp4"):
        VideoWriter(tmp_path / "v.gif")
    with pytest.raises(EdgeStereoError, match="frame rate must be positive"):
        VideoWriter(tmp_path / "v.mp4", fps=0)
    with VideoWriter(tmp_path / "v.mp4") as video:
        video.write(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(EdgeStereoError, match="frame is 30x32, the video is 32x32"):
            video.write(np.zeros((32, 30, 3), np.uint8))
        with pytest.raises(EdgeStereoError, match="uint8"):
            video.write(np.zeros((32, 32, 3), np.float32))
