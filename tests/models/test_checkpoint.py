import pickle

import pytest
import torch

from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.models._checkpoint import load_state_dict_strict, read_checkpoint


class _Net(torch.nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3)
        self.norm = torch.nn.BatchNorm2d(width)


def test_wrappers_and_dataparallel_prefix(tmp_path):
    state = _Net().state_dict()
    variants = {
        "bare.pth": state,
        "dp.pth": {f"module.{k}": v for k, v in state.items()},
        "lightning.ckpt": {"state_dict": state, "hyper_parameters": {"in_channels": 3}, "epoch": 3},
        "gwc.ckpt": {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 15},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        checkpoint = read_checkpoint(tmp_path / name)
        assert set(checkpoint.state_dict) == set(state), name
    assert read_checkpoint(tmp_path / "lightning.ckpt").meta["hyper_parameters"] == {"in_channels": 3}


class _Exploit:
    def __reduce__(self):
        return (print, ("this code must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"weights": _Exploit()}, handle)
    with pytest.raises(ReadError, match="refused to load"):
        read_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("just text")
    with pytest.raises(ReadError, match=r"not a PyTorch checkpoint|refused"):
        read_checkpoint(path)
    with pytest.raises(ReadError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ReadError, match="safetensors"):
        read_checkpoint(tmp_path / "bad.safetensors")


def test_strict_loading_names_missing_unexpected_and_misshaped_keys():
    wide = _Net(8).state_dict()
    wide["extra.weight"] = torch.zeros(1)
    del wide["norm.running_mean"]
    with pytest.raises(EdgeStereoError) as info:
        load_state_dict_strict(_Net(4), wide, "other.pth")
    message = str(info.value)
    assert "1 missing: norm.running_mean" in message
    assert "1 unexpected: extra.weight" in message
    assert "mis-shaped: conv.weight (8, 3, 3, 3) vs (4, 3, 3, 3)" in message
    assert "\n" not in message
