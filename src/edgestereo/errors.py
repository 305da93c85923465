"""The exception classes for user mistakes (bad files, options, checkpoints, missing weights).

The CLI turns an :class:`EdgeStereoError` into a one-line message and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class EdgeStereoError(Exception):
    """A problem the user can fix: the message names the file, key, option or shape at fault."""


class ReadError(EdgeStereoError):
    """A file could not be read; ``path`` is the file and the message says what is wrong with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputError(EdgeStereoError):
    """An output cannot be written where it was asked for (a file where a folder should be, no
    permission, a full disk); ``path`` is the output and the message says what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class WeightsRequiredError(EdgeStereoError):
    """A network was asked to run with no weights given and none packaged for it; ``model`` is its name."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"{model} ships no weights with edgestereo: give a checkpoint with --pretrained FILE "
                         "(Python: pretrained=FILE), or --random-weights for an untrained network")
