"""Issue 18 on the agent service, through real HTTP on loopback with a tiny model, a real
shop and real Chroma: one user's bad row never fails another's, bodies are capped
while they are read, episode threads belong to the user who started them, and episode
state without a checkpointer is bounded."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from agent.serve_app import MAX_BODY_BYTES, ServiceThread, create_app
from agent.serve_batcher import Batcher
from agent.serve_threads import thread_key
from tests.helpers.serve_fixtures import seed_memory, service_for, tiny_agent


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with tiny_agent(tmp_path_factory.mktemp("isolation")) as agent:
        seed_memory(agent.store, norm=50.0)
        yield agent


def test_whitespace_only_request_is_refused_before_batching(agent):
    service = service_for(agent, remember=False)
    try:
        with ServiceThread(create_app(service)) as url:
            for path in ("/v1/act", "/v1/episode"):
                answer = httpx.post(url + path, json={"user_id": "U_CAMPER01", "request": " \t\n "}, timeout=60)
                assert answer.status_code == 422, answer.text
                assert "only whitespace" in answer.text
    finally:
        service.close()
    assert service.batcher.stats.decided + service.batcher.stats.failed == 0  # nothing reached the model


def test_a_row_that_fails_at_decision_time_fails_alone(agent):
    """A blank row reaching the model (here: submitted past the API's check) made the whole
    batch answer 500 "empty request"; now the other row gets its decision."""
    service = service_for(agent, max_batch=4, max_wait_s=0.3, remember=False)
    method = service.method(None)
    try:
        bad = service.batcher.submit("U_COFFEE01", "   ", method)
        good = service.batcher.submit("U_CAMPER01", "need something for camping trips", method)
        decision = good.result(300).value
        with pytest.raises(ValueError, match="empty request"):
            bad.result(300)
    finally:
        service.close()
    alone = agent.decide("U_CAMPER01", "need something for camping trips", method=method)
    assert (decision.raw, decision.call) == (alone.raw, alone.call)


def test_a_failing_batch_is_decided_row_by_row():
    def decide(items, group):
        if any(request == "boom" for _, request in items):
            raise RuntimeError("bad row")
        return [f"ok:{user}" for user, _ in items]

    batcher = Batcher(decide, max_batch=8, max_wait_s=0.2, max_queue=16)
    futures = {user: batcher.submit(user, "boom" if user == "U2" else "fine", "g") for user in ("U1", "U2", "U3")}
    assert futures["U1"].result(10).value == "ok:U1" and futures["U3"].result(10).value == "ok:U3"
    with pytest.raises(RuntimeError, match="bad row"):
        futures["U2"].result(10)
    assert (batcher.stats.decided, batcher.stats.failed) == (2, 1)
    batcher.close()


def send_unfinished_chunked_body(url: str, path: str, chunk: bytes, content_type: str) -> bytes:
    """Send headers and ONE chunk of a chunked body that never ends; return the reply.
    A server that reads the whole body before checking never answers (the test times out)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = b""
        deadline = time.monotonic() + 20
        while b"\r\n\r\n" not in reply and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
        return reply


def test_chunked_body_is_refused_while_it_is_read(agent):
    service = service_for(agent, remember=False)
    try:
        with ServiceThread(create_app(service)) as url:
            reply = send_unfinished_chunked_body(url, "/v1/act", b"x" * (MAX_BODY_BYTES + 1), "application/json")
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            within = httpx.post(url + "/v1/act", json={"user_id": "U_1", "request": "x", "pad": 1}, timeout=30)
            assert within.status_code == 422 and "pad" in within.text  # a body within the cap is read as ever
    finally:
        service.close()


def test_episode_thread_belongs_to_the_user_who_started_it(agent):
    service = service_for(agent, remember=False)
    saver = agent.graph(service.method(None), "single").checkpointer
    try:
        with ServiceThread(create_app(service)) as url:
            first = httpx.post(url + "/v1/episode", json={"user_id": "U_CAMPER01", "request": "a tent for my trips",
                                                          "thread_id": "session-1"}, timeout=300)
            assert first.status_code == 200, first.text
            assert first.json()["thread_id"] == "session-1"
            agent.flush_memory(timeout=120)
            before = agent.store.count("U_COFFEE01")
            other = httpx.post(url + "/v1/episode", json={"user_id": "U_COFFEE01", "request": "coffee beans",
                                                          "thread_id": "session-1"}, timeout=300)
            assert other.status_code == 403 and "another user" in other.text
            agent.flush_memory(timeout=120)
            assert agent.store.count("U_COFFEE01") == before
    finally:
        service.close()
    assert saver.get_tuple({"configurable": {"thread_id": thread_key("U_COFFEE01", "session-1")}}) is None
    # a fresh service (a restart) has forgotten the owner, yet the same id is a new thread for U_COFFEE01
    fresh = service_for(agent, remember=False)
    try:
        with ServiceThread(create_app(fresh)) as url:
            again = httpx.post(url + "/v1/episode", json={"user_id": "U_COFFEE01", "request": "coffee beans",
                                                          "thread_id": "session-1"}, timeout=300)
            assert again.status_code == 200, again.text
    finally:
        fresh.close()
    state = saver.get_tuple({"configurable": {"thread_id": thread_key("U_COFFEE01", "session-1")}})
    texts = " ".join(str(m.content) for m in state.checkpoint["channel_values"]["messages"])
    assert "coffee beans" in texts and "a tent for my trips" not in texts


def test_episode_state_without_a_checkpointer_is_bounded(agent):
    service = service_for(agent, remember=False, max_episodes=2)
    saver = agent.graph(service.method(None), "single").checkpointer
    try:
        with ServiceThread(create_app(service)) as url:
            for i in range(3):
                answer = httpx.post(url + "/v1/episode", json={"user_id": "U_RUNNER01", "request": f"gear for run {i}",
                                                               "thread_id": f"lru-{i}"}, timeout=300)
                assert answer.status_code == 200, answer.text
            health = httpx.get(url + "/v1/health").json()
    finally:
        service.close()
    kept = [saver.get_tuple({"configurable": {"thread_id": thread_key("U_RUNNER01", f"lru-{i}")}}) is not None
            for i in range(3)]
    assert kept == [False, True, True]
    assert health["episodes"] == {"threads": 2, "bound": 2}
