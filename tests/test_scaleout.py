"""Past one machine: two worker processes, each its own model, share one `chroma run`
server (memory) and one PostgreSQL (LangGraph checkpoints). Interleaved requests of the
same users go to both; nothing may be lost: every request answered, every thread's
checkpoints present, online memory entries of both workers in the shared store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agent.serve_threads import thread_key
from memory.server import ChromaServer, free_port
from tests.helpers.serve_fixtures import MEMORY, seed_memory, tiny_agent

ROOT = Path(__file__).resolve().parents[1]
USERS = sorted(MEMORY)
ACCEPTED = ("you found the right hiking boots for my weekend", "the espresso beans were exactly what I drink")

WORKER = """
import sys, time
from pathlib import Path
from agent.serve import postgres_checkpointer
from agent.serve_app import ServiceThread, create_app
from tests.helpers.serve_fixtures import service_for, tiny_agent

root, chroma, postgres, shop, port = sys.argv[1:6]
with postgres_checkpointer(postgres) as saver:
    with tiny_agent(Path(root), store_location=chroma, shop_url=shop, checkpointer=saver) as agent:
        service = service_for(agent, remember=True)
        with ServiceThread(create_app(service), port=int(port)) as url:
            print("ready", url, flush=True)
            sys.stdin.read()  # until the test closes our stdin
        service.close()
        print("flushed", agent.flush_memory(120), flush=True)
"""


@pytest.fixture(scope="module")
def postgres_url():
    scratch = Path(tempfile.mkdtemp(prefix="fints-pg-"))  # not under pytest's 0700 tmp: the server runs as `postgres`
    scratch.chmod(0o755)
    started = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "start", str(scratch / "pg")],
                             capture_output=True, text=True, timeout=300)
    if started.returncode == 3:
        shutil.rmtree(scratch, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot be installed here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "stop", str(scratch / "pg")], timeout=120)
    shutil.rmtree(scratch, ignore_errors=True)


def start_worker(root: Path, chroma: str, postgres: str, shop: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), str(root), chroma, postgres, shop, str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=(root / "stderr.log").open("w"), text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen, root: Path) -> None:
    seen = []
    for line in process.stdout:  # libraries may print before we do
        if line.startswith("ready"):
            return
        seen.append(line)
    raise AssertionError("worker exited before it was ready:\n" + "".join(seen)
                         + (root / "stderr.log").read_text()[-3000:])


def test_two_workers_share_memory_and_checkpoints_and_lose_nothing(tmp_path, postgres_url):
    from langgraph.checkpoint.postgres import PostgresSaver

    from agent.serve import postgres_checkpointer
    from tools import ShopServer
    from tools.shop.sample import write_sample_dataset

    with postgres_checkpointer(postgres_url):
        pass  # create the tables once, before two workers race to
    with ChromaServer(tmp_path / "chroma") as chroma, ShopServer(write_sample_dataset(tmp_path / "shop")) as shop:
        with tiny_agent(tmp_path / "seed", store_location=chroma, shop_url=shop.url, online_memory=False) as seeder:
            seed_memory(seeder.store)
            entries_before = {user: seeder.store.count(user) for user in USERS}
        workers = [start_worker(tmp_path / f"w{i}", chroma, postgres_url, shop.url) for i in range(2)]
        try:
            for i, (process, _) in enumerate(workers):
                wait_ready(process, tmp_path / f"w{i}")
            # first every decision on the same memory (interleaved: the same users on both
            # workers), then the writes (episodes' online entries, feedback) racing each other
            acts, writes = [], []
            for i in range(12):
                user, (_, url) = USERS[i % len(USERS)], workers[i % 2]
                request = MEMORY[user][i % 2]
                acts.append((url, "/v1/act", {"user_id": user, "request": request, "execute": False}))
                writes.append((url, "/v1/episode", {"user_id": user, "request": request, "thread_id": f"t{i}"}))
            for w, (_, url) in enumerate(workers):
                for user in USERS:
                    call = {"name": "search_product_by_query", "args": {"query": f"{user} pick {w}"}}
                    writes.append((url, "/v1/feedback", {"user_id": user, "request": ACCEPTED[w], "call": call}))
            jobs = acts + writes
            with ThreadPoolExecutor(8) as pool:
                answers = [*pool.map(lambda job: httpx.post(job[0] + job[1], json=job[2], timeout=300), acts),
                           *pool.map(lambda job: httpx.post(job[0] + job[1], json=job[2], timeout=300), writes)]
        finally:
            outputs = []
            for process, _ in workers:
                out, _ = process.communicate("", timeout=240)
                outputs.append(out)
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        assert all("flushed True" in out for out in outputs), outputs
        acts = [a.json() for (_, path, _), a in zip(jobs, answers) if path == "/v1/act"]
        by_request: dict[tuple[str, str], set[str]] = {}
        for (_, path, body), answer in zip(jobs, answers):
            if path == "/v1/act":
                by_request.setdefault((body["user_id"], body["request"]), set()).add(answer.json()["raw"])
        assert all(len(raws) == 1 for raws in by_request.values()), "the two workers decided differently"
        assert all(a["steering"]["applied"] for a in acts)

        with PostgresSaver.from_conn_string(postgres_url) as saver:
            for i in range(12):
                key = thread_key(USERS[i % len(USERS)], f"t{i}")  # the service keys threads by their user
                checkpoint = saver.get_tuple({"configurable": {"thread_id": key}})
                assert checkpoint is not None, f"thread t{i} has no checkpoint"
                assert checkpoint.checkpoint["channel_values"].get("user_id") == USERS[i % len(USERS)]

        with tiny_agent(tmp_path / "check", store_location=chroma, shop_url=shop.url, online_memory=False) as reader:
            for user in USERS:
                online = [e for e in reader.store.entries(user) if e.source == "online"]
                keys = {e.key for e in online}
                # both workers' feedback, and the user's own completed episodes (a call the
                # shop ran is accepted), nothing of another user's
                assert set(ACCEPTED) <= keys <= set(ACCEPTED) | set(MEMORY[user]), (user, keys)
                assert reader.store.count(user) == entries_before[user] + len(online)
