"""What every command that runs or exports a network shares: the weights rule (packaged weights,
else a one-line refusal naming --pretrained, unless --random-weights) and --threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgestereo import DEFAULT_MODEL
from edgestereo.apps.cli import build_parser, main
from edgestereo.data.io import read_pfm, write_image
from edgestereo.runtime.factory import DEFAULT_THREADS
from stereo_fixtures import shifted_pair

NO_WEIGHTS = "raft-stereo-realtime"


@pytest.fixture
def pair(tmp_path):
    left, right = shifted_pair(48, 128, disparity=8)
    for side, image in (("left", left), ("right", right)):
        (tmp_path / "in" / side).mkdir(parents=True)
        write_image(tmp_path / "in" / side / "0000.png", image)
    return [str(tmp_path / "in" / "left" / "0000.png"), str(tmp_path / "in" / "right" / "0000.png")]


def _commands(tmp_path, pair):
    """command → arguments that reach the model, for each command that runs or exports a network."""
    return {
        "infer": ["infer", *pair, "--out", str(tmp_path / "o")],
        "batch": ["batch", "--dir", str(tmp_path / "in"), "--out", str(tmp_path / "o")],
        "live": ["live", "--no-window", "--source", str(tmp_path / "none.mp4"), "--output-prefix",
                 str(tmp_path / "o" / "f")],
        "eval": ["eval", "--dataset", "synthetic", "--dataset-option", "num=1", "--quiet"],
        "bench": ["bench", "--height", "64", "--width", "128", "--iters", "1", "--warmup", "0"],
        "export": ["export", "--height", "64", "--width", "128", "--out", str(tmp_path / "m.onnx")],
    }


@pytest.mark.parametrize("command", ["infer", "batch", "live", "eval", "bench", "export"])
def test_a_model_without_weights_is_refused_in_one_line_naming_pretrained(command, tmp_path, pair, capsys):
    code = main([*_commands(tmp_path, pair)[command], "--model", NO_WEIGHTS])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{NO_WEIGHTS} ships no weights" in err and "--pretrained" in err and "--random-weights" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_random_weights_run_an_untrained_network(tmp_path, pair, capsys):
    assert main(["infer", *pair, "--model", NO_WEIGHTS, "--random-weights", "--iters", "1",
                 "--out", str(tmp_path / "o")]) == 0
    assert NO_WEIGHTS in capsys.readouterr().out and (tmp_path / "o" / "disparity.pfm").is_file()
    with pytest.raises(SystemExit) as info:
        main(["infer", *pair, "--random-weights", "--pretrained", "w.safetensors", "--out", str(tmp_path / "p")])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_sgbm_needs_no_weights(tmp_path, pair):
    assert main(["infer", *pair, "--model", "sgbm", "--out", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("command", ["infer", "batch", "live", "eval", "bench", "quantize"])
def test_every_command_that_runs_a_network_takes_threads(command, tmp_path, pair):
    argv = {"quantize": ["quantize", "--onnx", "m.onnx", "--calib-dataset", "synthetic"],
            "bench": [*_commands(tmp_path, pair)["bench"], "--model", "sgbm"]}.get(command)
    argv = argv or _commands(tmp_path, pair)[command]
    assert build_parser().parse_args(argv).threads == DEFAULT_THREADS
    assert build_parser().parse_args([*argv, "--threads", "3"]).threads == 3


def test_threads_reach_pytorch(tmp_path, pair):
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            argv = ["infer", *pair, "--model", "sgbm", "--threads", str(threads), "--out", str(tmp_path / "o")]
            assert main(argv) == 0
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_export_without_a_model_is_the_default_model_with_its_weights_and_matches_infer(tmp_path, capsys):
    """The same pair through `infer` (PyTorch) and `infer --onnx` of `export` with no model options."""
    import cv2

    from edgestereo.data.samples import load_motorcycle
    from edgestereo.runtime.onnx_file import OnnxMetadata

    left, right, _ = load_motorcycle()
    pair = []
    for name, image in (("left.png", left), ("right.png", right)):
        write_image(tmp_path / name, cv2.resize(image, (256, 128), interpolation=cv2.INTER_AREA))
        pair.append(str(tmp_path / name))
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--height", "128", "--width", "256", "--out", str(onnx_file)]) == 0
    assert OnnxMetadata.read(onnx_file).model == DEFAULT_MODEL
    assert main(["infer", *pair, "--out", str(tmp_path / "torch")]) == 0
    assert main(["infer", *pair, "--onnx", str(onnx_file), "--out", str(tmp_path / "onnx")]) == 0
    torch_disparity = read_pfm(tmp_path / "torch" / "disparity.pfm")
    onnx_disparity = read_pfm(tmp_path / "onnx" / "disparity.pfm")
    # trained weights see structure in the motorcycle: a random network would not come near
    assert 2.0 < float(torch_disparity.mean()) < 40.0
    assert np.abs(onnx_disparity - torch_disparity).max() < 1e-3
