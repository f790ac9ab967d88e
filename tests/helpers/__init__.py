"""Fixtures and builders more than one test module uses: the shop's (shop.py, for every
module through tests/conftest.py) and the served agent with API keys (serve.py,
imported by the modules that use it)."""
