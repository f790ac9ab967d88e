"""The agent service with API keys, on loopback: the tiny agent with seeded memory, a
key ring, and the service behind those keys (test_openai_api, test_serve_auth).

A module takes them with `from tests.helpers.serve import agent, keys, served`; its
`SERVED_SETTINGS` (a dict of `ServeSettings` fields) tunes the served service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.serve_app import ServiceThread, create_app
from tests.helpers.serve_fixtures import seed_memory, service_for, tiny_agent
from tools.auth import KeyRing


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """The tiny agent over the sample shop, its memory seeded with strong random vectors."""
    with tiny_agent(tmp_path_factory.mktemp("agent")) as agent:
        seed_memory(agent.store, norm=50.0)
        yield agent


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> KeyRing:
    return KeyRing(tmp_path_factory.mktemp("keys") / "keys.json")


@contextmanager
def serving(service: Any, keys: KeyRing | None) -> Iterator[str]:
    """`service` served on loopback behind `keys` (None: no keys); its URL. The
    service is closed afterwards."""
    try:
        with ServiceThread(create_app(service, keys)) as url:
            yield url
    finally:
        service.close()


@pytest.fixture(scope="module")
def served(agent, keys, request):
    """(service, url) of `agent` behind `keys`, online memory writes off."""
    settings = {"remember": False, **getattr(request.module, "SERVED_SETTINGS", {})}
    service = service_for(agent, **settings)
    with serving(service, keys) as url:
        yield service, url
