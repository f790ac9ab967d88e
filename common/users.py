"""User ids as the service, its keys and memory exports take them, and the CLI's way of
naming several."""

from __future__ import annotations

import re

# The one user-id rule of the service, the keys and memory imports: 1-64 letters,
# digits, _ . -, starting with a letter or digit (no "/", which keys threads by user).
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
USER_ID = re.compile(USER_ID_PATTERN)


def split_users(values: list[str] | None) -> list[str] | None:
    """`--users U1 U2`, `--users U1,U2` and `--users "U1, U2"` all mean [U1, U2]."""
    if values is None:
        return None
    return [user for value in values for user in value.replace(",", " ").split()]
