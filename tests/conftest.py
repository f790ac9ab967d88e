"""Shared test set-up: the fixtures of tests/helpers/, no test reads or writes the
user's own defaults file, and no property test is timed."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.helpers.shop import sample_http, sample_shop, sample_shop_dir  # noqa: F401  (shared fixtures)

# Hypothesis fails an example that takes over 200 ms by default: a timing check nobody
# wrote, which a loaded machine trips (a bootstrap of 3 floats failed at 253 ms once,
# 0.35 ms on the retry). Speed is measured by `fints bench`, not by tests.
settings.register_profile("untimed", deadline=None)
settings.load_profile("untimed")


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
