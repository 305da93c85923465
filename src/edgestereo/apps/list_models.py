"""List the registered models, one line each."""

from __future__ import annotations

import argparse

HELP = "list the registered models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from edgestereo.models import get_model_entry, list_models

    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        entry = get_model_entry(name)
        weights = "  [weights packaged]" if entry.packaged_weights else ""
        print(f"{name:<{width}}  {entry.description}{weights}")
    return 0
