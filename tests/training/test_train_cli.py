"""`edgestereo train`: a whole (tiny) run, its files, the exported weights, and the user errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import edgestereo
from edgestereo.apps.cli import main
from edgestereo.errors import EdgeStereoError
from edgestereo.models import create_model
from edgestereo.training import export_weights
from edgestereo.training.lightning_cli import run_training

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_recipe):
    """One 2-step run shared by the tests that only read what it left behind."""
    folder = tmp_path_factory.mktemp("finished")
    result = run_training(["--config", str(tiny_recipe), "--trainer.default_root_dir", str(folder / "run")])
    return result, tiny_recipe


def test_a_run_leaves_checkpoints_logs_a_picture_grid_and_weights(finished_run):
    result, _ = finished_run
    assert not result.interrupted and result.global_step == 2
    assert result.last_checkpoint == result.root / "checkpoints" / "last.ckpt"
    assert result.best_checkpoint is not None and result.best_checkpoint.parent == result.root / "checkpoints"
    rows = list(csv.DictReader((result.root / "logs" / "version_0" / "metrics.csv").open()))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"train/loss", "train/epe", "train/samples_per_s", "val/epe", "val/bad1", "val/bad3", "val/d1"} <= logged
    grids = sorted((result.root / "images").glob("val_step*.png"))
    assert grids and grids[0].stat().st_size > 0
    assert (result.root / "model.json").is_file() and (result.root / "best.json").is_file()


def test_exported_weights_load_without_lightning_and_match_the_checkpoint(finished_run):
    result, _ = finished_run
    loaded = edgestereo.load_model(result.weights)
    assert loaded.model_name == "stereonet-plus-small" and loaded.config.max_disp == 32
    by_name = create_model("stereonet-plus-small", pretrained=result.weights)
    checkpoint = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][f"model.{key}"])
        assert torch.equal(value, by_name.state_dict()[key])
    again = edgestereo.load_model(export_weights(result.last_checkpoint, result.root / "again.safetensors"))
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in loaded.state_dict().items())


def test_resume_last_after_the_end_continues_to_a_longer_schedule(finished_run, tmp_path):
    result, recipe = finished_run
    longer = run_training(["--config", str(recipe), "--trainer.default_root_dir", str(result.root),
                           "--trainer.max_steps", "3"], resume="last", export=False)
    assert longer.global_step == 3


@pytest.mark.parametrize(("model", "message"), [
    (["--model.model", "stereonet"], "the checkpoint trains model 'stereonet-plus-small', this run trains 'stereonet'"),
    # max_disp sets the channels of the aggregation over disparities
    (["--model.model_config", "{max_disp: 64}"], "mis-shaped: model.aggregations.0.intra.0.conv1.0.weight"),
], ids=["another-model", "another-architecture"])
def test_resuming_a_checkpoint_of_another_model_is_refused(finished_run, capsys, model, message):
    result, recipe = finished_run
    code = main(["train", "--config", str(recipe), "--trainer.default_root_dir", str(result.root), *model,
                 "--resume", "last"])
    assert code == 2
    error = capsys.readouterr().err
    assert f"edgestereo train: error: --resume {result.last_checkpoint}" in error and message in error
    assert error.count("\n") == 1


def test_resume_last_with_nothing_to_resume(tiny_args, capsys):
    assert main(["train", *tiny_args, "--resume", "last"]) == 2
    assert "--resume last: no checkpoint in" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "yaml_text", "message"), [
    (["--model.lrr", "0.1"], "", "unknown config key 'model.lrr' in the command line; did you mean model.lr"),
    (["--trainer.devicez", "2"], "", "unknown config key 'trainer.devicez' in the command line; did you mean "
                                     "trainer.devices"),
    ([], "data:\n  batch_sise: 4\n", "unknown config key 'data.batch_sise' in {file}; did you mean data.batch_size"),
    ([], "modle:\n  lr: 0.1\n", "unknown config key 'modle.lr' in {file}"),
    (["--data.root", "/no/such/folder"], "", "data.root: /no/such/folder does not exist"),
    (["--data.batch_size", "8"], "", "data.batch_size 8 is larger than the data set: synthetic (train) has 4 "
                                     "training samples"),
    (["--model.loss", "photometric"], "", "bad configuration: Parser key \"model.loss\""),
    (["--model.model", "stereonet-pls"], "", "unknown model 'stereonet-pls'. Did you mean stereonet-plus"),
])
def test_configuration_mistakes_are_one_line_errors(tiny_args, tmp_path, capsys, extra, yaml_text, message):
    args = list(tiny_args)
    extra_file = tmp_path / "extra.yaml"
    if yaml_text:
        extra_file.write_text(yaml_text)
        args += ["--config", str(extra_file)]
    assert main(["train", *args, *extra]) == 2
    error = capsys.readouterr().err
    assert message.format(file=extra_file) in error
    assert error.count("\n") == 1


def test_unknown_keys_inside_free_form_options_are_left_to_their_owner():
    """model_config and data.options are dicts handed to the model and the data set, which check them."""
    with pytest.raises(EdgeStereoError, match="unknown option"):
        run_training(["--model.model_config", "{max_dsp: 32}", "--trainer.max_steps", "1",
                      "--data.options", "{num: 2, size: [64, 128], max_disp: 24}"])


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses(recipe, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", str(recipe), "--print_config"])
    assert stop.value.code == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed and "trainer:" in printed
