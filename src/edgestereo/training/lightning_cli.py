"""``edgestereo train``: a LightningCLI over :class:`StereoLitModule` and :class:`StereoDataModule`.

Users of Lightning recognise it: ``--config recipe.yaml`` then dotted overrides
(``--trainer.devices 2 --data.batch_size 4 --model.lr 1e-4``), ``--print_config``. On top of it:
unknown keys are refused with their close matches, ``--resume last`` continues from the newest
checkpoint of the run (refusing one of another model), checkpoints go to
``<trainer.default_root_dir>/checkpoints`` (``last.ckpt`` every ``step_checkpoint.every_n_steps``
steps and on SIGTERM, the best by validation EPE), and the final and best weights are exported as
safetensors + JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from edgestereo.errors import EdgeStereoError
from edgestereo.training.callbacks import LAST_CHECKPOINT, BestCheckpoint, StepCheckpoint, TrainingSpeed
from edgestereo.training.datamodule import StereoDataModule
from edgestereo.training.lit_module import StereoLitModule

__all__ = ["StereoCLI", "TrainResult", "check_config_keys", "find_resume_checkpoint", "run_training"]

#: where runs go unless the recipe or the command line says otherwise.
DEFAULT_ROOT_DIR = "runs/train"


# --------------------------------------------------------------------------- unknown keys
def _known_keys(parser: argparse.ArgumentParser) -> set[str]:
    keys = set()
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and not option.endswith(".help"):
                keys.add(option[2:].rstrip("+"))
    return keys


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _unknown_key(key: str, known: set[str], groups: set[str]) -> bool:
    """True unless ``key`` is a known option or lies inside one whose value is free-form (a dict,
    a list of callbacks …): the nearest known ancestor must not be a group of options."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        ancestor = ".".join(parts[:end])
        if ancestor in known:
            return end < len(parts) and ancestor in groups
    return True


def check_config_keys(parser: argparse.ArgumentParser, args: Sequence[str]) -> None:
    """Refuse keys the parser does not know, in the ``--config`` files and on the command line,
    naming the key, where it came from and its close matches."""
    known = _known_keys(parser)
    groups = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
    leaves = sorted(known - groups)

    def fail(key: str, source: str) -> None:
        close = difflib.get_close_matches(key, leaves, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `edgestereo train --print_config`"
        raise EdgeStereoError(f"unknown config key {key!r} in {source}{hint}")

    items = list(args)
    for index, item in enumerate(items):
        if item == "-c":
            item = "--config"
        if not item.startswith("--"):
            continue
        key, _, value = item[2:].partition("=")
        key = key.rstrip("+")
        if key == "config":
            path = value or (items[index + 1] if index + 1 < len(items) else "")
            for flat_key, _ in _flatten(_read_yaml(path)):
                if flat_key and _unknown_key(flat_key, known, groups):
                    fail(flat_key, path)
        elif _unknown_key(key, known, groups):
            fail(key, "the command line")


def _read_yaml(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise EdgeStereoError(f"--config {path}: file not found")
    try:
        return yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EdgeStereoError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None


# --------------------------------------------------------------------------- the CLI
class StereoCLI(LightningCLI):
    """LightningCLI with edgestereo's defaults: checkpoints and logs under
    ``trainer.default_root_dir``, a CSV logger (and TensorBoard when installed), throughput on the
    progress bar, and the checkpoint groups ``checkpoint`` (best by ``val/epe``, ``val/zncc`` for
    self-supervised runs, the starting weights among the candidates) and
    ``step_checkpoint`` (``last.ckpt`` every N steps and on SIGTERM)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/epe",
            "checkpoint.mode": "min",
            "checkpoint.save_top_k": 1,
            "checkpoint.filename": "best-epoch{epoch:03d}-step{step:07d}",
            "checkpoint.auto_insert_metric_name": False,
            "checkpoint.enable_version_counter": False,
        })
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")
        parser.add_lightning_class_args(TrainingSpeed, "speed")
        parser.set_defaults({"trainer.default_root_dir": DEFAULT_ROOT_DIR})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        check_config_keys(parser, list(args or []))
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as exc:
            message = " ".join(str(exc).split())
            raise EdgeStereoError(f"bad configuration: {message}") from None

    def before_instantiate_classes(self) -> None:
        from edgestereo.data.io import check_output_dir

        config = self.config
        root = Path(config["trainer"]["default_root_dir"])
        try:
            check_output_dir(root)
        except EdgeStereoError as exc:
            raise EdgeStereoError(f"trainer.default_root_dir {exc}") from None
        if not config["checkpoint"].get("dirpath"):
            config["checkpoint"]["dirpath"] = str(root / "checkpoints")
        if not config["step_checkpoint"].get("dirpath"):
            config["step_checkpoint"]["dirpath"] = str(root / "checkpoints")
        if config["checkpoint"]["monitor"] == "val/epe":
            if config["data"].get("val_split") is None:
                # no validation: keep the newest epoch-end checkpoint instead of a best one
                config["checkpoint"]["monitor"] = None
            elif config["model"].get("loss") == "self_supervised":
                config["checkpoint"]["monitor"] = "val/zncc"
        if config["checkpoint"]["monitor"] and config["checkpoint"].get("save_on_train_epoch_end") is None:
            # a validation metric exists only after validation: do not look for it when an epoch ends
            config["checkpoint"]["save_on_train_epoch_end"] = False

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer_config = {**self.config_init["trainer"], **kwargs}
        if trainer_config.get("logger") in (None, True):
            trainer_config["logger"] = _default_loggers(Path(trainer_config["default_root_dir"]))
        callbacks = [self.config_init[key] for key in self.parser.callback_keys]
        if trainer_config.get("enable_checkpointing") is False:
            # the checkpoint groups are always there; enable_checkpointing: false switches them off
            callbacks = [cb for cb in callbacks if not isinstance(cb, (ModelCheckpoint, StepCheckpoint))]
        return self._instantiate_trainer(trainer_config, callbacks)


def _default_loggers(root: Path) -> list[Any]:
    """CSV always (a new ``logs/version_N`` per session, so a resumed run never rewrites the old
    file), TensorBoard as well when it is installed."""
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = [CSVLogger(save_dir=str(root), name="logs")]
    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        loggers.append(TensorBoardLogger(save_dir=str(root), name="tensorboard"))
    return loggers


def check_crop_sizes(module: StereoLitModule, datamodule: StereoDataModule) -> None:
    """Refuse training crops the network cannot take (H and W multiples of its divisor) before training
    starts, naming the option and a size that works."""
    divisor = module.model.divisor
    for option, (height, width) in datamodule.crop_sizes().items():
        if height % divisor or width % divisor:
            fit = [max(divisor, value // divisor * divisor) for value in (height, width)]
            raise EdgeStereoError(f"{option} [{height}, {width}]: {module.hparams.model} needs multiples of "
                                  f"{divisor}; use e.g. [{fit[0]}, {fit[1]}]")


def _remove_session_logs(trainer: Any, root: Path, created: list[Path]) -> None:
    """Remove what a run that failed before its first step wrote: the loggers' version folders, then
    the folders of ``created`` (the run folder and the ones above it that did not exist) left empty."""
    import shutil

    from edgestereo.data.io import remove_empty_folders

    folders = [Path(logger.log_dir) for logger in trainer.loggers if getattr(logger, "log_dir", None)]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    remove_empty_folders([*dict.fromkeys(folder.parent for folder in folders), root / "checkpoints", *created])


# --------------------------------------------------------------------------- resume
def find_resume_checkpoint(resume: str, checkpoint_dirs: Iterable[Path]) -> Path:
    """``last``: ``last.ckpt`` in the run's checkpoint folder, else the newest ``*.ckpt`` there;
    otherwise ``resume`` is a checkpoint path."""
    if resume != "last":
        path = Path(resume)
        if not path.is_file():
            raise EdgeStereoError(f"--resume {resume}: checkpoint file not found")
        return path
    folders = list(dict.fromkeys(Path(d) for d in checkpoint_dirs))
    for folder in folders:
        if (folder / LAST_CHECKPOINT).is_file():
            return folder / LAST_CHECKPOINT
    candidates = [p for folder in folders if folder.is_dir() for p in folder.glob("*.ckpt")]
    if not candidates:
        where = ", ".join(str(f) for f in folders)
        raise EdgeStereoError(f"--resume last: no checkpoint in {where} (nothing to resume; start without --resume)")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def check_resumable(path: Path, module: StereoLitModule) -> None:
    """Refuse a checkpoint of another model, of the same model with another architecture, or of a
    run with another ``model.quant``."""
    from edgestereo.models._checkpoint import load_state_dict_strict, read_checkpoint

    checkpoint = read_checkpoint(path)
    hyper_parameters = checkpoint.meta.get("hyper_parameters") or {}
    saved = hyper_parameters.get("model")
    if saved is None:
        raise EdgeStereoError(f"--resume {path}: not a checkpoint written by `edgestereo train`")
    if saved != module.hparams.model:
        raise EdgeStereoError(
            f"--resume {path}: the checkpoint trains model {saved!r}, this run trains {module.hparams.model!r}"
        )
    saved_quant, quant = hyper_parameters.get("quant"), module.hparams.quant
    if saved_quant != quant:
        raise EdgeStereoError(
            f"--resume {path}: the checkpoint was trained with model.quant {saved_quant or 'null'}, this run has "
            f"{quant or 'null'} (to start QAT from float weights use --model.pretrained CHECKPOINT instead)"
        )
    # the QAT graph (qat.*) exists only once fitting starts; Lightning checks its keys when it loads them
    network_state = {k: v for k, v in checkpoint.state_dict.items() if not k.startswith("qat.")}
    load_state_dict_strict(module, network_state, f"--resume {path}")


# --------------------------------------------------------------------------- entry point
@contextlib.contextmanager
def _lightning_logs_held() -> Iterator[None]:
    """Hold the lines Lightning logs inside the block (seed, devices, tips) and print them when it
    succeeds; when it raises they are dropped, so the error is the only line."""
    held: list[logging.LogRecord] = []

    class Hold(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.name.startswith("lightning"):
                held.append(record)
                return False
            return True

    hold = Hold()
    names = ["", *(name for name in logging.root.manager.loggerDict if name.startswith("lightning"))]
    handlers = {handler for name in names for handler in logging.getLogger(name).handlers}
    for handler in handlers:
        handler.addFilter(hold)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(hold)
    for record in held:
        logging.getLogger(record.name).handle(record)


@dataclass
class TrainResult:
    """What a finished (or SIGTERM-stopped) run left behind."""

    root: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    weights: Path | None
    interrupted: bool
    global_step: int


def run_training(args: Sequence[str], resume: str | None = None, export: bool = True) -> TrainResult:
    """Parse LightningCLI ``args`` (``--config FILE``, ``--trainer.*``, ``--model.*``, ``--data.*`` …),
    train (resuming from ``resume``: "last" or a path) and export the weights.

    Exports ``<root>/model.safetensors`` (final weights) and ``<root>/best.safetensors`` (best
    validation checkpoint) with their JSON configs, on rank 0.
    """
    from edgestereo.data.io import missing_folders
    from edgestereo.training.weights import export_weights

    with _lightning_logs_held():  # a run refused while it is set up prints its one-line error alone
        with warnings.catch_warnings():
            # LightningCLI warns when sys.argv also holds arguments: here they are `edgestereo train`'s own
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            cli = StereoCLI(
                StereoLitModule,
                StereoDataModule,
                args=list(args),
                run=False,
                seed_everything_default=0,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"exit_on_error": False},
            )
        trainer, module = cli.trainer, cli.model
        root = Path(trainer.default_root_dir)
        check_crop_sizes(module, cli.datamodule)
        created = missing_folders(root.absolute())
        step_checkpoint = next((cb for cb in trainer.callbacks if isinstance(cb, StepCheckpoint)), None)
        best_callback = trainer.checkpoint_callback
        ckpt_path = None
        if resume:
            callbacks = (step_checkpoint, best_callback)
            folders = [Path(cb.dirpath) for cb in callbacks if cb is not None and cb.dirpath] + [root / "checkpoints"]
            ckpt_path = find_resume_checkpoint(resume, folders)
            check_resumable(ckpt_path, module)
    interrupted = False
    try:
        with warnings.catch_warnings():
            # StereoDataModule resumes mid-epoch through its own state_dict, which Lightning does not see
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
            # best and last checkpoints share the run's folder on purpose
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            if module.hparams.get("freeze_bn"):
                # model.freeze_bn keeps every BatchNorm in eval mode on purpose
                warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start")
            trainer.fit(module, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:
        interrupted = True
    except BaseException:
        if trainer.global_step == 0 and ckpt_path is None:
            _remove_session_logs(trainer, root.absolute(), created)
        raise
    best = Path(best_callback.best_model_path) if getattr(best_callback, "best_model_path", "") else None
    last = step_checkpoint.last_path if step_checkpoint is not None and step_checkpoint.last_path.is_file() else None
    weights = None
    if export and not interrupted and trainer.is_global_zero:
        weights = export_weights(module, root / "model.safetensors")
        if best is not None and best.is_file():
            export_weights(best, root / "best.safetensors")
    return TrainResult(root, last, best, weights, interrupted, trainer.global_step)
