"""The shop's bundled sample data set, written once per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.shop.sample import write_sample_dataset


@pytest.fixture(scope="module")
def sample_shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the sample catalog, users and tasks (tools.shop.sample). A
    module serves another data set through `sample_shop` and `sample_http` by defining
    its own `sample_shop_dir` (tests/test_shop_generated.py)."""
    return write_sample_dataset(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def sample_shop(sample_shop_dir: Path):
    """The shop over the sample data set, served on a free local port."""
    from tools.shop import ShopServer

    with ShopServer(sample_shop_dir) as running:
        yield running


@pytest.fixture(scope="module")
def sample_http(sample_shop):
    """The tools' HTTP transport to `sample_shop`."""
    from tools.transport_http import HttpTransport

    with HttpTransport(sample_shop.url) as transport:
        yield transport
