"""Fixtures and builders more than one test module uses: the shop's (shop.py, for every
module through tests/conftest.py), the served agent with API keys (serve.py) and its
building blocks (serve_fixtures.py), the tiny random models (tiny_models.py) and random
tool schemas (schemas.py), imported by the modules that use them."""
