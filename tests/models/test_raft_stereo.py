"""RAFT-Stereo: published parameter names, checkpoint loading and refusals, deploy vs reference parity."""

import json
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from edgestereo.errors import EdgeStereoError, ReadError
from edgestereo.models import create_model
from edgestereo.models.raft_stereo import RAFTStereo, RAFTStereoConfig
from edgestereo.models.raft_stereo.model import VARIANTS

#: names and shapes listed from the public implementation (see the file's "source").
PUBLISHED = json.loads((Path(__file__).parent / "data" / "raft_stereo_published_keys.json").read_text())
#: parameter counts of the public RAFTStereo built with each checkpoint's flags.
PARAMETERS = {"raft-stereo": 11_116_176, "raft-stereo-realtime": 9_865_568, "raft-stereo-rvc": 11_108_688}


def _meta_model(name: str, **overrides) -> RAFTStereo:
    with torch.device("meta"):
        return create_model(name, **overrides)


def _published_checkpoint(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A synthetic file with the published names and shapes, keys prefixed as nn.DataParallel saves them."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in PUBLISHED[name].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    # norm3 and downsample.1 are one module saved under two names: one tensor in the published files
    for key in state:
        if ".downsample.1." in key:
            state[key.replace(".downsample.1.", ".norm3.")] = state[key]
    return state


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_names_shapes_and_count_are_the_published_ones(name):
    model = _meta_model(name)
    assert {f"module.{k}": list(v.shape) for k, v in model.state_dict().items()} == PUBLISHED[name]
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


def test_published_configurations():
    realtime = _meta_model("raft-stereo-realtime").config
    assert (realtime.shared_backbone, realtime.n_downsample, realtime.n_gru_layers, realtime.slow_fast_gru,
            realtime.iters) == (True, 3, 2, True, 7)
    standard = RAFTStereoConfig()
    assert (standard.hidden_dims, standard.n_downsample, standard.n_gru_layers, standard.corr_levels,
            standard.corr_radius, standard.iters) == ((128, 128, 128), 2, 3, 4, 4, 32)
    assert _meta_model("raft-stereo-rvc").config.context_norm == "instance"
    assert _meta_model("raft-stereo-realtime", iters=3).config.iters == 3


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_loads_a_dataparallel_checkpoint_with_the_published_names(name, tmp_path):
    state = _published_checkpoint(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    model = create_model(name, pretrained=path, iters=1)
    loaded = model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key.removeprefix("module.")], value)
    assert model.config.iters == 1 and model.model_name == name


def test_checkpoint_of_the_other_configuration_lists_the_keys(tmp_path):
    path = tmp_path / "raftstereo-realtime.pth"
    torch.save(_published_checkpoint("raft-stereo-realtime"), path)
    with pytest.raises(EdgeStereoError) as error:
        create_model("raft-stereo", pretrained=path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert "does not fit raft-stereo: 34 missing: context_zqr_convs.2.weight" in message
    assert "6 unexpected: conv2.0.conv1.weight" in message
    assert "5 mis-shaped: update_block.gru16.convz.weight (128, 256, 3, 3) vs (128, 384, 3, 3)" in message
    assert message.endswith("(the file fits raft-stereo-realtime)")

    standard = tmp_path / "raftstereo-eth3d.pth"
    torch.save(_published_checkpoint("raft-stereo"), standard)
    with pytest.raises(EdgeStereoError, match=r"unexpected: cnet.norm1.weight.*fits raft-stereo\)"):
        create_model("raft-stereo-rvc", pretrained=standard)


def test_checkpoint_with_foreign_keys_is_refused_without_a_guess(tmp_path):
    state = _published_checkpoint("raft-stereo-realtime")
    state["module.extra.weight"] = torch.zeros(3)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(EdgeStereoError, match=r"1 unexpected: extra.weight$"):
        create_model("raft-stereo-realtime", pretrained=path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_bad_files_are_refused(tmp_path, capsys):
    text = tmp_path / "raftstereo-realtime.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ReadError, match=r"raftstereo-realtime\.pth: (not a PyTorch checkpoint|refused)"):
        create_model("raft-stereo-realtime", pretrained=text)
    evil = tmp_path / "evil.pth"
    state = _published_checkpoint("raft-stereo-realtime")
    torch.save({**state, "module.payload": _RunsCode()}, evil)
    with pytest.raises(ReadError, match="refused to load"):
        create_model("raft-stereo-realtime", pretrained=evil)
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("overrides,problem", [
    ({"context_norm": "layer"}, "context_norm must be one of"),
    ({"n_gru_layers": 4}, "n_gru_layers must be 1 to 3"),
    ({"n_downsample": 5}, "n_downsample must be 0 to 3"),
    ({"iters": 0}, "iters and train_iters must be ≥ 1"),
    ({"hidden_dims": (128, 128, 0)}, "hidden_dims must be three positive sizes"),
    ({"hidden_dims": (128, 128)}, r"RAFTStereoConfig\.hidden_dims is tuple\[int, int, int\]"),
    ({"max_disp": 192}, "unknown option.*max_disp"),
])
def test_config_errors(overrides, problem):
    with pytest.raises(EdgeStereoError, match=problem):
        _meta_model("raft-stereo", **overrides)


def test_input_size_errors():
    model = create_model("raft-stereo-realtime", iters=1)
    with pytest.raises(EdgeStereoError, match="not a multiple of 32"):
        model(torch.zeros(1, 3, 64, 100), torch.zeros(1, 3, 64, 100))
    with pytest.raises(EdgeStereoError, match=r"width 96 is too small.*at least 128 px"):
        model(torch.zeros(1, 3, 64, 96), torch.zeros(1, 3, 64, 96))


class _OpRecorder(TorchFunctionMode):
    """Names of the torch functions called and the largest rank of any tensor they return."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()
        self.max_rank = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.names.add(getattr(func, "__name__", repr(func)))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                self.max_rank = max(self.max_rank, value.dim())
        return out


@pytest.mark.parametrize("name", ["raft-stereo", "raft-stereo-realtime"])
def test_deploy_path_avoids_the_ops_npus_refuse(name):
    torch.manual_seed(0)
    model = create_model(name, iters=2)
    left, right = model.example_inputs(64, 128)
    runs = {}
    for deploy in (False, True):
        recorder = _OpRecorder()
        with torch.no_grad(), recorder:
            model.deploy(deploy)(left, right)
        runs[deploy] = recorder
    assert {"grid_sample", "einsum", "__setitem__"} <= runs[False].names and runs[False].max_rank == 7
    assert not {"grid_sample", "einsum", "__setitem__", "unfold"} & runs[True].names
    assert runs[True].max_rank <= 4


def _per_step_outputs(name: str, height: int, width: int, batch: int, iters: int):
    """Disparity after every step on both paths, one seeded random model and pair."""
    torch.manual_seed(0)
    model = create_model(name, train_iters=iters)
    left, right = model.example_inputs(height, width, batch=batch)
    with torch.no_grad():
        reference = model.forward_train(left, right)
        deployed = model.deploy().forward_train(left, right)
    return reference, deployed


def _assert_parity(reference, deployed):
    assert len(reference) == len(deployed)
    first = (deployed[0] - reference[0]).abs()
    assert first.max() <= 1e-3, f"after 1 step: max |Δ| {first.max():.2e} px"
    last = (deployed[-1] - reference[-1]).abs()
    assert last.mean() <= 1e-3 and last.max() <= 1e-2, (
        f"after {len(reference)} steps: mean |Δ| {last.mean():.2e}, max |Δ| {last.max():.2e} px")
    assert reference[-1].abs().mean() > 0.1  # a field that moved, not a trivial zero


def test_parity_realtime_256x512_7_steps():
    _assert_parity(*_per_step_outputs("raft-stereo-realtime", 256, 512, 1, iters=7))


def test_parity_standard_small_batch_2():
    _assert_parity(*_per_step_outputs("raft-stereo", 64, 128, 2, iters=8))


@pytest.mark.slow
def test_parity_realtime_256x512_7_steps_batch_2():
    _assert_parity(*_per_step_outputs("raft-stereo-realtime", 256, 512, 2, iters=7))


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2])
def test_parity_standard_256x512_32_steps(batch):
    _assert_parity(*_per_step_outputs("raft-stereo", 256, 512, batch, iters=32))


@pytest.mark.slow
def test_parity_rvc_256x512_32_steps():
    _assert_parity(*_per_step_outputs("raft-stereo-rvc", 256, 512, 1, iters=32))


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    model = create_model("raft-stereo-realtime", iters=1)
    left, right = model.example_inputs(64, 128)
    with torch.no_grad():
        fp32 = model(left, right)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(left, right)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    assert (bf16 - fp32).abs().mean() < 0.05 * fp32.abs().mean() + 0.1
