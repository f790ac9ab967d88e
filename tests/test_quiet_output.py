"""What a user reads is the project's own output: no library deprecation warnings where
the project calls transformers, one progress bar per long step (none for a load from
the cache). Run in subprocesses: transformers warns once per process, so a check inside
the test process would miss what an earlier test already triggered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "default"}

# Two decisions share their instructions (the second reuses the first one's KV cache,
# handed to `generate`), a steered one reruns part of them, and a vector is extracted
# over a reused prefix: every place the project passes or reads a KV cache.
CACHE_USERS = """
import torch
from tests.helpers.tiny_models import tiny_model
from agent.chat_model import SteeredChatModel
from steering import ContrastPair, SteeringVector, extract_vectors

def find(query: str) -> str:
    '''Find items.'''
    return query

loaded = tiny_model("gemma3", "bpe", seed=1)
chat = SteeredChatModel(loaded=loaded, max_new_tokens=12, max_string_length=4)
bound = chat.bind_tools([find], tool_choice="any")
for request in ("find shoes", "find socks", "find hats"):
    bound.invoke(request)
vector = SteeringVector({"whole.0": torch.ones(loaded.hidden_size)}, loaded.model_id, loaded.hidden_size)
bound.invoke("find a cap", steering=vector)
pairs = [ContrastPair("shared words before the answer " + s, " yes", " no") for s in ("a", "b", "c")]
extract_vectors(loaded, pairs, sites="whole", layers=[1])
print("done")
"""


def test_kv_cache_calls_print_no_deprecation_warning() -> None:
    run = subprocess.run([sys.executable, "-c", CACHE_USERS], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "done"
    assert "Warning" not in run.stderr and "deprecated" not in run.stderr, run.stderr


@pytest.mark.slow
def test_model_info_prints_no_warning_and_no_library_bars() -> None:
    """`fints model info` loads the bundled model: from the cache, no bar at all; on a
    first load, only the one long step (dequantizing the GGUF) draws a bar."""
    run = subprocess.run([str(Path(sys.executable).with_name("fints")), "model", "info"], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert '"architecture"' in run.stdout
    assert "Warning" not in run.stderr, run.stderr
    for bar in ("Loading weights", "Writing model shards"):
        assert bar not in run.stderr, run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("progress", [True, False])
def test_a_first_load_draws_the_dequantizing_bar_only_when_progress_is_on(tmp_path: Path, progress: bool) -> None:
    """`fints eval --no-progress` (`load_model(progress=False)`) leaves no bar at all,
    even where the bundled GGUF is converted for the first time; with progress on, the
    one long step keeps its bar."""
    load = f"from steering import load_model; print(load_model(progress={progress}).model_id)"
    run = subprocess.run([sys.executable, "-c", load], cwd=ROOT, env={**ENV, "FINTS_MODEL_CACHE": str(tmp_path)},
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert any(tmp_path.iterdir()), "the model was not converted into the fresh cache"
    assert ("de-quantizing" in run.stderr) is progress, run.stderr
    assert "Warning" not in run.stderr, run.stderr
