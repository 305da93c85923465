"""`edgestereo synth` and `edgestereo pack` end to end, and their user mistakes (one line, exit code 2)."""

import json

import numpy as np
import pytest

from edgestereo.apps.cli import main
from edgestereo.data import create_dataset


def test_synth_then_pack_then_read(tmp_path, capsys):
    synth = ["synth", "--out", str(tmp_path / "synth"), "--num", "3", "--size", "32", "64", "--max-disp", "12",
             "--seed", "1"]
    assert main(synth) == 0
    assert "3 pairs of 32x64" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["max_disp"] == 12
    assert main(synth) == 0  # resuming a finished set writes nothing new

    assert main(["pack", "--dataset", "synthetic", "--root", str(tmp_path / "synth"), "--out",
                 str(tmp_path / "pack"), "--opt", "noc=true"]) == 0
    assert "3 samples of synthetic" in capsys.readouterr().out
    packed = create_dataset("lmdb", tmp_path / "pack")
    source = create_dataset("synthetic", tmp_path / "synth", noc=True)
    np.testing.assert_array_equal(packed[2]["valid"], source[2]["valid"])
    assert not packed[2]["valid"].all()

    generated = ["pack", "--dataset", "synthetic", "--opt", "num=2", "--opt", "size=[32,64]", "--opt", "max_disp=12",
                 "--out", str(tmp_path / "generated")]
    assert main(generated) == 0
    np.testing.assert_array_equal(create_dataset("lmdb", tmp_path / "generated")[1]["left"],
                                  create_dataset("synthetic", num=2, size=(32, 64), max_disp=12)[1]["left"])


@pytest.mark.parametrize(("argv", "message"), [
    (["synth", "--out", "{tmp}/s", "--num", "0"], "--num must be ≥ 1"),
    (["synth", "--out", "{tmp}/s", "--size", "32", "64", "--max-disp", "64"], "max_disp must be in"),
    (["pack", "--dataset", "kitti2015", "--root", "{tmp}/missing", "--out", "{tmp}/p"], "missing: folder not found"),
    (["pack", "--dataset", "sceneflw", "--out", "{tmp}/p"], "Did you mean sceneflow"),
    (["pack", "--dataset", "synthetic", "--opt", "sparkle=1", "--out", "{tmp}/p"], "unknown synthetic option"),
    (["pack", "--dataset", "lmdb", "--root", "{tmp}", "--out", "{tmp}/p"], "already a pack"),
])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"edgestereo {argv[0]}: error:") and message in error


def test_bad_option_syntax_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pack", "--dataset", "synthetic", "--out", "x", "--opt", "noequals"])
    assert exit_info.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err
