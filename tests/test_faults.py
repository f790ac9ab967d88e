"""Faults: a killed agent process, a dead shop, a dead Chroma server, corrupt vector
files and poisoned memory. Each ends in a clear error or the flagged unsteered fallback,
never a crash, never a half-written entry, never one user's damage in another's answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from agent.serve_app import ServiceThread, create_app
from memory import MemoryEntry, digest_arguments, make_entry_id
from memory.server import ChromaServer, free_port
from steering import SteeringVector, VectorError
from tests.helpers.serve_fixtures import MEMORY, RECOMMEND, SITE_KEYS, seed_memory, service_for, tiny_agent

ROOT = Path(__file__).resolve().parents[1]
SEARCH = {"name": "search_product_by_query", "args": {"query": "backpacking tent"}}

KILLED_CHILD = """
import os, signal, sys, time
from pathlib import Path
from langgraph.checkpoint.sqlite import SqliteSaver
import agent.graph
from tests.helpers.serve_fixtures import seed_memory, tiny_agent

def killed_while_generating(state, deps):
    time.sleep(1.0)  # mid-generation, after the steer step's checkpoint
    os.kill(os.getpid(), signal.SIGKILL)

agent.graph.llm_node = killed_while_generating
root = Path(sys.argv[1])
with SqliteSaver.from_conn_string(str(root / "checkpoints.sqlite")) as saver:
    with tiny_agent(root, checkpointer=saver) as a:
        seed_memory(a.store)
        print("running", flush=True)
        a.run("U_CAMPER01", "need something for camping trips", thread_id="t-killed")
print("not killed", flush=True)
"""


def test_killed_mid_episode_resumes_from_the_checkpoint_in_a_new_process(tmp_path):
    from langgraph.checkpoint.sqlite import SqliteSaver

    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_CHILD), str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=240,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert "running" in child.stdout and "not killed" not in child.stdout
    with SqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as saver:
        with tiny_agent(tmp_path, checkpointer=saver, online_memory=False) as agent:
            config = {"configurable": {"thread_id": "t-killed"}}
            before = agent.graph().get_state(config)
            assert before.next == ("llm",)  # killed between steer and llm
            assert before.values["steering"]["applied"] is True and before.values["steering_vector"]
            result = agent.resume("t-killed")
            after = agent.graph().get_state(config)
    assert after.next == ()
    assert result.steering == before.values["steering"]  # resumed with the steering it had
    assert any(m.type == "ai" for m in result.messages)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with tiny_agent(tmp_path_factory.mktemp("faults")) as agent:
        seed_memory(agent.store)
        yield agent


def test_shop_down_is_a_clear_failed_result_not_a_crash(agent, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    with tiny_agent(tmp_path, loaded=agent.loaded, shop_url=dead, online_memory=False) as offline:
        service = service_for(offline)
        try:
            outcome = service.execute("U_CAMPER01", "a tent", SEARCH)
            episode = offline.run("U_CAMPER01", "need something for camping trips")
        finally:
            service.close()
    assert outcome.ok is False and outcome.text.startswith("Error") and "shop" in outcome.text
    assert episode.result_text == "" or episode.result_text.startswith("Error")


def test_chroma_down_answers_unsteered_with_the_fallback_flag_and_writes_nothing_half(agent, tmp_path):
    port = free_port()
    server = ChromaServer(tmp_path / "chroma", port=port)
    server.start()
    try:
        with tiny_agent(tmp_path, loaded=agent.loaded, store_location=server.url) as remote:
            seed_memory(remote.store)
            service = service_for(remote, remember=True)
            before = remote.store.count()
            with ServiceThread(create_app(service)) as url:
                body = {"user_id": "U_COFFEE01", "request": "something for my coffee mornings", "execute": False}
                up = httpx.post(f"{url}/v1/act", json=body, timeout=120).json()
                server.stop()
                time.sleep(1.2)  # past the store's key-snapshot TTL
                down = httpx.post(f"{url}/v1/act", json={**body, "user_id": "U_RUNNER01"}, timeout=120)
                accepted = {"user_id": "U_RUNNER01", "request": "gear for my runs", "call": SEARCH}
                feedback = httpx.post(f"{url}/v1/feedback", json=accepted, timeout=60)
                remote.flush_memory(60)
            service.close()
            server.start()  # same path, same port: what is stored is whole
            assert remote.store.count() == before
    finally:
        server.stop()
    assert up["steering"]["applied"] is True
    assert down.status_code == 200
    answer = down.json()
    assert answer["steering"]["applied"] is False and "unavailable" in answer["steering"]["fallback"]
    assert feedback.status_code == 200


def test_corrupt_vector_files_raise_a_clear_error(tmp_path):
    vector = SteeringVector({"attn.1": torch.ones(32)}, "tiny-gemma3", 32)
    good = vector.save(tmp_path / "v.safetensors")
    data = good.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "garbage": b"\x00\xff" * 64, "empty": b"",
             "broken header": data[:8] + b"[" + data[9:]}
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(VectorError, match=str(path.name)):
            SteeringVector.load(path)
    with pytest.raises(VectorError):
        SteeringVector.load(good, hidden_size=64)
    assert torch.equal(SteeringVector.load(good).tensors["attn.1"], torch.ones(32))


def poisoned_user(store, norms: dict[str, float], extreme: float) -> str:
    """Three ordinary entries (norm = the site's reference norm) and one of `extreme` times it."""
    rng = np.random.default_rng(7)
    requests = ["camping gear for my trip", "a tent for my camping trip",
                "a sleeping bag for my camping trip", "camping stove for my trip"]
    entries = []
    for i, request in enumerate(requests):
        size = extreme if i == 3 else 1.0
        vectors = {}
        for key in SITE_KEYS:
            v = rng.normal(size=32).astype(np.float32)
            vectors[key] = v / np.linalg.norm(v) * norms.get(key, 1.0) * size
        entries.append(MemoryEntry("U_POISONED", request, vectors, RECOMMEND["name"],
                                   digest_arguments(RECOMMEND["args"]), time.time() - i, "online",
                                   make_entry_id("U_POISONED", request)))
    agent_store = store
    agent_store.add(entries, hygiene=False)  # as if it slipped past hygiene
    return entries[3].entry_id


def test_poisoned_entry_is_clipped_bounded_and_stays_with_its_user(agent):
    from agent.methods import parse_method
    from steering import reference_norms
    from tests.helpers.serve_fixtures import TINY_STEERING

    method = parse_method("steer-attn+mlp-mean", agent.loaded.model_id, **{**TINY_STEERING, "threshold": 0.0})
    other = [(user, requests[0]) for user, requests in MEMORY.items()]
    before = [agent.decide(u, r, method=method) for u, r in other]

    poison_id = poisoned_user(agent.store, reference_norms(agent.loaded), extreme=1e6)
    decision = agent.learner.steering_for("U_POISONED", "camping gear for a trip", method)
    assert decision.applied and poison_id in decision.entry_ids and len(decision.entry_ids) == 4
    found = agent.store.retrieve("U_POISONED", "camping gear for a trip", k=4, threshold=0.0)
    poison = found.vectors["attn.1"][found.entry_ids.index(poison_id)]
    final = decision.vector.tensors["attn.1"].float()
    cosine = float(final @ torch.from_numpy(poison).float() / (final.norm() * np.linalg.norm(poison)))
    # unclipped, the 1e6-norm entry would be the whole aggregate (cosine ~1); clipped to
    # `clip` x the reference norm it is one voice among four (cosine ~clip/sqrt(clip^2+3))
    bound = method.clip / np.sqrt(method.clip**2 + 3)
    assert cosine < 0.95 and abs(cosine - bound) < 0.35
    assert all(np.isfinite(v) for v in decision.summary()["norms"].values())

    after = [agent.decide(u, r, method=method) for u, r in other]
    assert [(d.raw, d.steering) for d in after] == [(d.raw, d.steering) for d in before]
    assert all(poison_id not in str(d.steering) for d in after)
