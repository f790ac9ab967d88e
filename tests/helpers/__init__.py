"""Fixtures and builders more than one test module uses (imported by tests/conftest.py)."""
