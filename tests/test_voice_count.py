"""scripts/voice_count.py, which chose `voice` in agent/defaults.json, runs on a
generated data set: every count scored over the non-held-out users' review tasks, the
bare review's figure recomputed here, and the voice sentences moving it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.runtime import intent_keys
from common.embedding import load_embedder
from tools.data import generate_dataset, load_dataset
from tools.scoring import review_similarity

ROOT = Path(__file__).resolve().parents[1]


def test_voice_count_scores_every_count_on_non_held_out_reviews(tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "data", users=12, seed=3)
    out = tmp_path / "voice.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "voice_count.py"), "--data", str(data), "--out", str(out)],
                   check=True, timeout=600, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    result = json.loads(out.read_text())
    dataset = load_dataset(data)
    held = set(dataset.manifest.held_out_users)
    tasks = [t for t in dataset.test if t.type == "review" and t.user_id not in held]
    assert result["tasks"] == len(tasks) > 0
    figures = result["r_acc_by_count"]
    assert list(figures) == ["0", "1", "2", "3", "4", "5", "6", "8"]
    keys, embedder = intent_keys(dataset), load_embedder()
    bare = [review_similarity(f"I bought this {keys.subject(t.task).lower()} a month ago and it works well.",
                              t.target.review.text, embedder) for t in tasks]
    assert abs(figures["0"] - sum(bare) / len(bare)) < 1e-3
    assert figures["4"] != figures["0"]  # the users' voice sentences were appended
