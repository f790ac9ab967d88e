"""Shared test set-up: the fixtures of tests/helpers/, and no test reads or writes the
user's own defaults file."""

from __future__ import annotations

import os

import pytest

from tests.helpers.shop import sample_http, sample_shop, sample_shop_dir  # noqa: F401  (shared fixtures)


@pytest.fixture(autouse=True, scope="session")
def _linear_dtype_from_the_cpu():
    """Models load in the form this CPU does best, whatever $FINTS_LINEAR_DTYPE the
    shell that runs the tests has set (tests that want a form name it)."""
    saved = os.environ.pop("FINTS_LINEAR_DTYPE", None)
    yield
    if saved is not None:
        os.environ["FINTS_LINEAR_DTYPE"] = saved


@pytest.fixture(autouse=True)
def _no_user_defaults(tmp_path_factory, monkeypatch):
    """Point $FINTS_CONFIG at a file that does not exist: the packaged defaults alone."""
    monkeypatch.setenv("FINTS_CONFIG", str(tmp_path_factory.mktemp("config") / "defaults.json"))
