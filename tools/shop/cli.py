"""Subcommands of `fints` for this package (see agent/cli.py)."""

from __future__ import annotations

import argparse


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
