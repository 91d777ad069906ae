"""The demos' command-line checks: argparse ``type`` functions and the ``--out`` directory, so
that a bad option is an argparse error naming it, never a traceback."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def integer(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an int no smaller than ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


def _number(text: str, ok: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number {what}, got {text!r}")
    return value


def non_negative_number(text: str) -> float:
    """An argparse ``type``: a finite float >= 0."""
    return _number(text, lambda v: v >= 0, ">= 0")


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite float > 0."""
    return _number(text, lambda v: v > 0, "> 0")


def out_dir(parser: argparse.ArgumentParser, path: str) -> Path:
    """Create ``--out`` (and its parents), or exit with an argparse error naming it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        parser.error(f"--out {out}: cannot create the directory ({e.strerror or e})")
    return out
