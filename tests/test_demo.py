"""`fints demo`, the main job, end to end on the bundled model: the side-by-side
decisions, the memory growing, and the stage figures of its two users."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow


def test_demo_shows_steering_win_where_the_stages_say_it_does(tmp_path, capsys) -> None:
    from agent.demo import STAGE_METHODS, run_demo
    from agent.methods import DEFAULT_METHOD

    assert run_demo(tmp_path / "data", store=str(tmp_path / "memory")) == 0
    out = capsys.readouterr().out
    assert "memory entries" in out and "Steered decisions matching the user's habit" in out
    stages = re.findall(r"^  (\S+) +(zero-shot|nearest-call|prompt-k\d|steer-\S+) +(\S+) +(\S+) +(\d+)/(\d+)$",
                        out, re.M)
    methods = [*STAGE_METHODS, DEFAULT_METHOD]
    assert [name for _, name, *_ in stages] == methods * 2  # each user, every method
    right = {name: 0 for name in methods}
    for _, name, _, _, got, n in stages:
        assert 0 <= int(got) <= int(n) and int(n) > 0
        right[name] += int(got)
    assert right[DEFAULT_METHOD] > right["zero-shot"]  # steering personalizes these users
