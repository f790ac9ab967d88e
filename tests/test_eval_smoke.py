"""End to end: `fints eval --suite smoke` with the real model, shop and memory store,
then every figure of the report checked (schema, ranges, counts, intervals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evals.report import validate_report
from tools.data import generate_dataset

pytestmark = [pytest.mark.slow, pytest.mark.eval_smoke]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = generate_dataset(root / "shop", users=20, seed=0)
    out = root / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "agent.cli", "eval", "--suite", "smoke",
                             "--data", str(data), "--out", str(out), "--no-progress"],
                            # a hang guard, not a speed check: the suite is sized for ~5
                            # minutes on two quiet cores; report.json's timing says how long
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text())


def test_smoke_report_is_sound(smoke) -> None:
    out, report = smoke
    validate_report(report)
    single = report["tracks"]["single"]
    assert set(single["methods"]) == {"zero-shot", "nearest-call", "prompt-k1", "steer-whole-attentive"}
    assert len(report["users"]) == 3 and single["tasks"] >= 6
    for summary in single["methods"].values():
        assert summary["overall"]["n"] == single["tasks"]
        assert sum(g["n"] for g in summary["per_type"].values()) == single["tasks"]
        assert summary["median_latency_s"] > 0
    assert single["methods"]["zero-shot"]["steered_rate"] == 0.0
    ceiling = single["ceiling"]  # the gold calls, executed: the right tool every time
    assert ceiling["overall"]["n"] == single["tasks"] and ceiling["overall"]["function_acc"] == 1.0
    assert ceiling["per_type"].get("search", {"result_acc": 1.0})["result_acc"] > 0.5
    text = (out / "report.md").read_text()
    assert "| gold call |" in text
    for summary in [*single["methods"].values(), ceiling]:  # per task: the call as written
        assert [o["task_id"] for o in summary["outcomes"]] == [o["task_id"] for o in ceiling["outcomes"]]
        assert all(o["arguments"] is not None for o in summary["outcomes"] if o["tool"])
    first = ceiling["outcomes"][0]
    assert f"**Example calls: {first['type']}**" in text and f"- `{first['task_id']}`, the user's own call" in text
    assert report["memory_build"]["interactions"] > 0
    for name in ("report.md", "single_turn.png"):
        assert (out / name).stat().st_size > 0
    assert "| zero-shot |" in (out / "report.md").read_text()


def test_steering_methods_did_steer(smoke) -> None:
    _, report = smoke
    methods = report["tracks"]["single"]["methods"]
    assert methods["steer-whole-attentive"]["steered_rate"] > 0


def test_task_file_path_end_to_end(smoke, tmp_path) -> None:
    """A PersonalWAB-format file (no task ids, no gold calls) evaluated against the shop."""
    out, report = smoke
    from tools.data import load_dataset

    dataset = load_dataset(report["data"])
    rows = [t.model_dump(exclude={"task_id", "gold_call"}) for t in dataset.test[:3]]
    tasks = tmp_path / "pwab_tasks.json"
    tasks.write_text(json.dumps({"test": rows}))
    result = subprocess.run([sys.executable, "-m", "agent.cli", "eval", "--data", report["data"],
                             "--tasks", str(tasks), "--methods", "zero-shot", "--out",
                             str(tmp_path / "o"), "--no-progress"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    file_report = json.loads((tmp_path / "o" / "report.json").read_text())
    validate_report(file_report)
    assert file_report["tasks_file"] == str(tasks)
    assert file_report["tracks"]["single"]["tasks"] == 3
    assert file_report["users"] == sorted({r["user_id"] for r in rows})
