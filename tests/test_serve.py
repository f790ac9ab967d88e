"""`fints serve` on a tiny model over a real shop and a real memory store, through real HTTP.

Greedy decoding makes outputs comparable exactly: a request must get the same generated
text (and so the same tool call) whether it was batched with other users' requests or
decided alone, and steering must never outlive the request that asked for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from agent.serve_app import MAX_BODY_BYTES, ServiceThread, create_app
from agent.serve_batcher import Batcher, QueueFullError, ShuttingDownError
from tests.helpers.serve_fixtures import MEMORY, hooks_left, seed_memory, service_for, tiny_agent

REQUESTS = {
    "U_CAMPER01": ["need something for camping trips", "a tent for the mountains"],
    "U_COFFEE01": ["something for my coffee mornings", "a kettle for the kitchen"],
    "U_RUNNER01": ["new gear for my runs", "shoes for trail running"],
    "U_NOBODY": ["anything nice", "a gift idea"],
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with tiny_agent(tmp_path_factory.mktemp("serve")) as agent:
        seed_memory(agent.store, norm=50.0)
        yield agent


@pytest.fixture(scope="module", params=["all", "decision"])
def served(agent, request):
    """The service, steering at every position or only for the tool's choice ("decision":
    the arguments are then written unsteered, from the cached shared instructions)."""
    service = service_for(agent, positions=request.param, max_batch=8, max_wait_s=0.05, remember=False)
    with ServiceThread(create_app(service)) as url:
        yield service, url
    service.close()


def post(url: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/act", json=body, timeout=300, **kwargs)


def test_parallel_batched_requests_equal_sequential_ones(agent, served):
    service, url = served
    items = [(user, request) for user, requests in REQUESTS.items() for request in requests]
    with ThreadPoolExecutor(len(items)) as pool:
        answers = list(pool.map(lambda it: post(url, {"user_id": it[0], "request": it[1], "execute": False,
                                                      "method": agent.method.name}), items))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert max(b["batch_size"] for b in bodies) > 1, "concurrent requests were not batched"
    alone = [agent.decide(user, request, method=service.method(agent.method.name))
             for user, request in items]
    for (user, _), body, single in zip(items, bodies, alone):
        assert (body["raw"], body["call"]) == (single.raw, single.call)
        assert body["steering"] == single.steering  # same entries, weights, norms
        assert body["steering"]["applied"] is (user in MEMORY)
    raws = {d.raw for d in alone}
    assert len(raws) > 1, "all rows generated the same text: the comparison would prove nothing"
    assert hooks_left(agent.loaded.model) == 0


def test_steering_never_outlives_its_request(agent, served, tmp_path):
    service, url = served
    zero = service.method("zero-shot")
    changed = []  # requests whose steered answer differs from the unsteered one
    with tiny_agent(tmp_path, loaded=agent.loaded, online_memory=False) as fresh:  # same weights, no memory
        for user in MEMORY:
            for text in REQUESTS[user]:
                baseline = fresh.decide(user, text, method=zero)
                steered = post(url, {"user_id": user, "request": text, "execute": False}).json()
                assert steered["steering"]["applied"] is True
                if steered["raw"] != baseline.raw:
                    changed.append((user, text, baseline))
    assert changed, "steering changed nothing: the test would prove nothing"
    user, text, baseline = changed[0]
    after = post(url, {"user_id": user, "request": text, "execute": False, "method": "zero-shot"}).json()
    assert after["steering"]["applied"] is False
    assert (after["raw"], after["call"]) == (baseline.raw, baseline.call)
    assert agent.decide(user, text, method=zero).raw == baseline.raw
    assert hooks_left(agent.loaded.model) == 0


def test_executes_the_call_against_the_shop(agent, served):
    _, url = served
    call = {"name": "search_product_by_query", "args": {"query": "backpacking tent"}}
    outcome = served[0].execute("U_CAMPER01", "a tent", call)
    assert outcome.ok and "B0TENT0001" in outcome.asins
    body = post(url, {"user_id": "U_CAMPER01", "request": "a tent please"}).json()
    assert body["call"] is None or body["result"] is not None  # made calls are run
    assert body["malformed"] == (body["call"] is None)


@pytest.mark.parametrize("body, fragment", [
    ({"user_id": "bad user!", "request": "x"}, "user_id"),
    ({"user_id": "U_1", "request": ""}, "request"),
    ({"user_id": "U_1", "request": "x" * 2001}, "request"),
    ({"user_id": "U_1", "request": "x", "surprise": 1}, "surprise"),
    ({"user_id": "U_1", "request": "x", "track": "both"}, "track"),
    ({"user_id": "U_1", "request": "x", "method": "steer-sideways"}, "valid methods"),
    ({"request": "x"}, "user_id"),
])
def test_invalid_input_is_refused_saying_why(served, body, fragment):
    _, url = served
    answer = post(url, body)
    assert answer.status_code == 422
    assert fragment in answer.text


def test_oversized_body_and_schema(served):
    _, url = served
    big = post(url, {"user_id": "U_1", "request": "x", "pad": "y" * MAX_BODY_BYTES})
    assert big.status_code == 413 and "too large" in big.text
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/act", "/v1/episode", "/v1/feedback", "/v1/health"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["ActRequest"]["properties"]["user_id"]["pattern"]


def test_full_queue_answers_429_with_retry_after_and_loses_nothing(agent):
    service = service_for(agent, max_batch=1, max_wait_s=0.0, max_queue=1, remember=False)
    body = {"user_id": "U_COFFEE01", "request": "something for my coffee mornings", "execute": False}
    try:
        with ServiceThread(create_app(service)) as url, ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: post(url, body), range(6)))
    finally:
        service.close()
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 and "busy" in a.text for a in refused)
    assert service.batcher.stats.decided + service.batcher.stats.refused == 6


def test_batcher_groups_by_method_and_answers_every_job_on_close():
    seen = []

    def decide(items, group):
        seen.append((group, len(items)))
        if group == "boom":
            raise RuntimeError("model exploded")
        return [f"{group}:{user}" for user, _ in items]

    batcher = Batcher(decide, max_batch=8, max_wait_s=0.2, max_queue=16)
    futures = [batcher.submit(f"U{i}", "r", "a" if i % 2 else "b") for i in range(6)]
    boom = batcher.submit("U9", "r", "boom")
    assert [f.result(10).value for f in futures] == [f"{'a' if i % 2 else 'b'}:U{i}" for i in range(6)]
    assert {f.result().batch_size for f in futures} == {3}
    with pytest.raises(RuntimeError, match="exploded"):
        boom.result(10)
    batcher.close()
    with pytest.raises(ShuttingDownError):
        batcher.submit("U1", "r", "a")


def test_batcher_bound_refuses_at_once():
    import threading

    gate = threading.Event()
    batcher = Batcher(lambda items, group: gate.wait(10) and [1] * len(items),
                      max_batch=1, max_wait_s=0, max_queue=2)
    first = batcher.submit("U1", "r", "g")
    while batcher.depth:  # wait until the batcher holds the first job
        pass
    queued = [batcher.submit("U2", "r", "g"), batcher.submit("U3", "r", "g")]
    with pytest.raises(QueueFullError) as refused:
        batcher.submit("U4", "r", "g")
    assert refused.value.retry_after_s >= 1
    gate.set()
    assert [f.result(10).value for f in [first, *queued]] == [1, 1, 1]
    batcher.close()
