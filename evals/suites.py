"""The two suites: `smoke` (an end-to-end check in minutes) and `full` (the published
results). A suite fixes defaults; explicit flags override them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    users: int | None  # None: every held-out user
    tasks_per_user: int | None
    methods: tuple[str, ...] | None  # None: every method
    tracks: tuple[str, ...]
    multi_users: int  # users (of the evaluated ones) on the multi-turn track
    experiments: tuple[str, ...]
    max_history: int = 10  # latest history items per user that become memory entries


SMOKE = Suite(  # sized to finish within 5 minutes on two CPU cores
    name="smoke", users=3, tasks_per_user=3,
    methods=("zero-shot", "prompt-k1", "steer-whole-attentive"),
    tracks=("single",), multi_users=2, experiments=(), max_history=4,
)
FULL = Suite(  # every held-out user, 2 of their ~10 test tasks: sized for 90 minutes on 2 cores
    name="full", users=None, tasks_per_user=2, methods=None, tracks=("single", "multi"),
    multi_users=4, experiments=("sparse", "clusters", "online", "sweep"),
)
SUITES = {s.name: s for s in (SMOKE, FULL)}
