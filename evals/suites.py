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
    # latest history items per user that become memory entries (None: all of them;
    # retrieval finds a user's way of asking only among enough of their past requests)
    max_history: int | None = None
    # methods on the multi-turn track (None: the single track's); an episode costs
    # several decisions, so the full suite runs the comparison that matters there
    multi_methods: tuple[str, ...] | None = None


SMOKE = Suite(  # sized to finish within 5 minutes on two CPU cores
    name="smoke", users=3, tasks_per_user=3,
    methods=("zero-shot", "nearest-call", "prompt-k1", "steer-whole-attentive"),
    tracks=("single",), multi_users=2, experiments=(), max_history=4,
)
# every held-out user and every one of their test tasks (392 on seed 0): what
# docs/results.md publishes (1 task per user has a 95% interval of +-0.15); the target is
# 90 minutes on two cores, and it takes about 4 hours on the AVX2 CPU: its prefills
# alone need 84 minutes of matrix products there (docs/results.md, "a floor")
FULL = Suite(
    name="full", users=None, tasks_per_user=None, methods=None, tracks=("single", "multi"),
    multi_users=6, experiments=("stages", "sparse", "clusters", "online", "calibration"),
    multi_methods=("zero-shot", "prompt-k5", "steer-whole-mean", "steer-whole-attentive"),
)
SUITES = {s.name: s for s in (SMOKE, FULL)}
