"""The OpenAI-compatible endpoint of `fints serve` (issue 19), through the real `openai`
client and LangChain's `ChatOpenAI` on loopback: a tiny model, a real shop, real Chroma
memory with per-user vectors, API keys on. One slow test runs the bundled model."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import jsonschema
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai import OpenAI

from agent.methods import DEFAULT_METHOD, parse_method
from agent.openai_api import MAX_BODY_BYTES
from tests.helpers.serve import agent, keys, served, serving  # noqa: F401  (fixtures)
from tests.helpers.serve_fixtures import MEMORY, seed_memory, service_for, tiny_agent
from tools import make_shop_tools
from tools.auth import FORWARDED_USER
from tools.registry import SINGLE_TURN_TOOLS

SHOP_TOOLS = [t for t in make_shop_tools(None) if t.name in SINGLE_TURN_TOOLS]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather forecast for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "units": {"type": "string", "enum": ["metric", "imperial"]}}, "required": ["city", "units"]}}}
TASK = {"type": "function", "function": {
    "name": "create_task", "description": "Create a task.",
    "parameters": {"type": "object", "properties": {"title": {"type": "string"}, "done": {"type": "boolean"}},
                   "required": ["title"]}}}
# a client's own tool under the name its memory entries were learned on (tests/helpers/serve_fixtures.RECOMMEND)
RECOMMEND = {"type": "function", "function": {
    "name": "get_recommendations_by_history", "description": "Recommend from what I bought.",
    "parameters": {"type": "object", "properties": {"limit": {"type": "integer"}}}}}
REQUESTS = ["something for my trips", "something for my runs"]


SERVED_SETTINGS = {"max_wait_s": 0.05}  # concurrent completions share a batch


@pytest.fixture(scope="module")
def key(keys) -> str:
    return keys.create([*MEMORY, "U_NOBODY"], label="openai tests")[0]


def client(url: str, key: str, **headers: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, default_headers=headers or None)


def complete(url: str, key: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=300)


def act_call(url: str, key: str, user: str, request: str) -> dict:
    answer = httpx.post(f"{url}/v1/act", json={"user_id": user, "request": request, "execute": False},
                        headers={"Authorization": f"Bearer {key}"}, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ask(url: str, key: str, user: str | None, request: str, **options):
    extra = {"user": user} if user else {}
    return client(url, key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": request}], **extra, **options)


MODEL = "tiny-gemma3"


def test_models_are_listed_in_the_standard_shape(served, agent, key):
    _, url = served
    assert agent.loaded.model_id == MODEL
    listed = client(url, key).models.list()
    assert [m.id for m in listed.data] == [MODEL] and listed.data[0].object == "model"
    assert client(url, key).models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        client(url, key).models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        client(url, "fints_000000000000_" + "x" * 43).models.list()


def test_a_tool_call_comes_back_in_the_standard_shape(served, key):
    _, url = served
    body = complete(url, key, model=MODEL, user="U_CAMPER01", tools=[WEATHER, TASK], tool_choice="required",
                    messages=[{"role": "system", "content": "You help with the weather."},
                              {"role": "user", "content": "Will it rain in Lyon this week?"}]).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == MODEL
    (choice,) = body["choices"]
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] is None
    (call,) = message["tool_calls"]
    assert set(call) == {"id", "type", "function"} and call["type"] == "function" and call["id"]
    assert isinstance(call["function"]["arguments"], str)
    tool = {"get_weather": WEATHER, "create_task": TASK}[call["function"]["name"]]
    jsonschema.validate(json.loads(call["function"]["arguments"]), tool["function"]["parameters"])
    # the tiny model rambles: its call is cut by the budget and closed by the grammar
    assert choice["finish_reason"] == ("length" if "cut" in body["fints"] else "tool_calls")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    named = ask(url, key, "U_CAMPER01", "Lyon, please", tools=[WEATHER, TASK],
                tool_choice={"type": "function", "function": {"name": "create_task"}})
    (call,) = named.choices[0].message.tool_calls
    assert call.function.name == "create_task"
    jsonschema.validate(json.loads(call.function.arguments), TASK["function"]["parameters"])
    text = ask(url, key, "U_CAMPER01", "hello", tools=[WEATHER], tool_choice="none", max_tokens=5)
    assert text.choices[0].message.tool_calls is None and isinstance(text.choices[0].message.content, str)
    assert text.choices[0].finish_reason in ("stop", "length") and text.usage.completion_tokens <= 5
    short = ask(url, key, "U_CAMPER01", REQUESTS[0], max_tokens=4, temperature=0.8)  # the shop's tools
    (call,) = short.choices[0].message.tool_calls
    assert call.function.name in SINGLE_TURN_TOOLS and isinstance(json.loads(call.function.arguments), dict)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens <= 4


def test_the_shop_decision_is_act_s_own_steered_per_user_and_batched_with_it(served, key):
    _, url = served
    items = [(user, request) for user in MEMORY for request in REQUESTS]
    with ThreadPoolExecutor(2 * len(items)) as pool:
        chats = [pool.submit(ask, url, key, user, request) for user, request in items]
        acts = [pool.submit(act_call, url, key, user, request) for user, request in items]
        chats, acts = [f.result() for f in chats], [f.result() for f in acts]
    assert max(c.fints["batch_size"] for c in chats) > 1, "concurrent requests were not batched"
    calls = {}
    for (user, request), chat, act in zip(items, chats, acts):
        (call,) = chat.choices[0].message.tool_calls
        calls[user, request] = (call.function.name, json.loads(call.function.arguments))
        assert calls[user, request] == (act["call"]["name"], act["call"]["args"])
        assert chat.fints["steering"] == act["steering"] and chat.fints["tools"] == "shop"
        assert {e["request"] for e in chat.fints["steering"]["entries"]} <= set(MEMORY[user])
    for request in REQUESTS:  # the same request, three memories
        assert len({json.dumps(calls[user, request]) for user in MEMORY}) > 1, request
    unsteered = ask(url, key, None, REQUESTS[0])
    assert unsteered.fints["steering"]["applied"] is False


def test_langchain_chat_openai_with_the_shop_tools_gets_each_user_s_call(served, key):
    _, url = served
    llm = ChatOpenAI(base_url=f"{url}/v1", api_key=key, model=MODEL, max_retries=0).bind_tools(SHOP_TOOLS)
    seen = set()
    for user in MEMORY:
        reply = llm.invoke(REQUESTS[1], user=user)
        (call,) = reply.tool_calls
        act = act_call(url, key, user, REQUESTS[1])["call"]
        assert (call["name"], call["args"]) == (act["name"], act["args"])
        seen.add(json.dumps([call["name"], call["args"]]))
    assert len(seen) > 1, "every user got the same call: steering is not visible"
    # the client ran the call and sent its result back: the shop agent answers with it
    ran = llm.invoke([("human", REQUESTS[1]), reply, {"role": "tool", "content": "Top 3: B01, B02, B03",
                                                       "tool_call_id": reply.tool_calls[0]["id"]}], user=user)
    assert ran.content == "Top 3: B01, B02, B03" and not ran.tool_calls


def test_client_tools_are_steered_only_by_entries_learned_on_them(served, key):
    _, url = served
    mine = ask(url, key, "U_CAMPER01", "stuff for camping in the mountains", tools=[RECOMMEND, WEATHER],
               tool_choice="required")
    assert mine.fints["tools"] == "client" and mine.fints["steering"]["applied"] is True
    other = ask(url, key, "U_CAMPER01", "stuff for camping in the mountains", tools=[WEATHER, TASK],
                tool_choice="required")
    assert other.fints["steering"]["applied"] is False
    assert "get_recommendations_by_history" in other.fints["steering"]["reason"]
    llm = ChatOpenAI(base_url=f"{url}/v1", api_key=key, model=MODEL, max_retries=0)
    steered = llm.bind_tools([RECOMMEND, WEATHER], tool_choice="any").invoke(MEMORY["U_RUNNER01"][0], user="U_RUNNER01")
    plain = llm.bind_tools([RECOMMEND, WEATHER], tool_choice="any").invoke(MEMORY["U_RUNNER01"][0])
    assert steered.tool_calls and plain.tool_calls
    assert steered.tool_calls[0]["args"] != plain.tool_calls[0]["args"] or \
        steered.tool_calls[0]["name"] != plain.tool_calls[0]["name"]


def test_a_named_or_only_tool_is_called_when_steering_only_picks_the_tool(agent, key, keys, tmp_path):
    """The agent's default positions ("decision"): steering picks the tool, so a named
    tool_choice, or a single tool, leaves nothing to pick; the call is that tool's."""
    asked = [(user, request) for user in MEMORY for request in [*MEMORY[user], *REQUESTS]]
    with tiny_agent(tmp_path, loaded=agent.loaded, online_memory=False) as deciding:
        seed_memory(deciding.store, norm=50.0)
        deciding.method = replace(deciding.method, positions="decision")
        service = service_for(deciding, positions="decision", max_wait_s=0.0, remember=False)
        with serving(service, keys) as url:
            named = [ask(url, key, user, request, tools=[RECOMMEND, WEATHER, TASK],
                         tool_choice={"type": "function", "function": {"name": name}})
                     for user, request in asked for name in ("create_task", "get_weather")]
            alone = [ask(url, key, user, request, tools=[tool], tool_choice="required")
                     for user, request in asked for tool in (RECOMMEND, TASK)]
    wanted = [name for _ in asked for name in ("create_task", "get_weather")]
    assert [[c.function.name for c in a.choices[0].message.tool_calls] for a in named] == [[n] for n in wanted]
    wanted = [tool["function"]["name"] for _ in asked for tool in (RECOMMEND, TASK)]
    assert [[c.function.name for c in a.choices[0].message.tool_calls] for a in alone] == [[n] for n in wanted]
    assert any(a.fints["steering"]["applied"] for a in alone)


USER_MESSAGE = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body, param, fragment", [
    ({"messages": USER_MESSAGE}, "model", "Field required"),
    ({"model": MODEL}, "messages", "Field required"),
    ({"model": MODEL, "messages": []}, "messages", "at least 1"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "'user'"),
    ({"model": MODEL, "messages": [{"role": "system", "content": "be brief"}]}, "messages", "no user message"),
    ({"model": MODEL, "messages": [*USER_MESSAGE, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[1]", "not JSON"),
    ({"model": MODEL, "messages": USER_MESSAGE, "tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "get_time"}}}, "tool_choice", "get_time"),
    ({"model": MODEL, "messages": USER_MESSAGE, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}}}]},
     "tools[0].function.parameters", "not a valid JSON schema"),
    ({"model": MODEL, "messages": USER_MESSAGE, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"model": MODEL, "messages": USER_MESSAGE, "stream": True}, "stream", "False"),
    ({"model": MODEL, "messages": USER_MESSAGE, "stop": ["\n"]}, "stop", "unsupported parameter"),
    ({"model": MODEL, "messages": USER_MESSAGE, "user": "bad user!"}, "user", "pattern"),
])
def test_a_bad_body_gets_the_standard_error(served, key, body, param, fragment):
    service, url = served
    decided = service.batcher.stats.decided
    answer = complete(url, key, **body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert set(answer.json()) == {"error"} and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and fragment in error["message"]
    assert service.batcher.stats.decided == decided


def test_other_errors_get_the_standard_shape_and_act_keeps_its_own(served, key):
    _, url = served
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url, key).chat.completions.create(model="gpt-4o", messages=USER_MESSAGE)
    assert unknown.value.status_code == 404 and unknown.value.code == "model_not_found"
    assert unknown.value.body["type"] == "invalid_request_error" and unknown.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client(url, key).chat.completions.create(model=MODEL, messages=USER_MESSAGE, n=2)
    assert bad.value.body["param"] == "n"
    junk = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", timeout=30,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert junk.status_code == 400 and junk.json()["error"]["message"] == "the body is not valid JSON"
    big = complete(url, key, model=MODEL, messages=USER_MESSAGE, pad="x" * MAX_BODY_BYTES)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    act = httpx.post(f"{url}/v1/act", json={"user_id": "U_1"}, headers={"Authorization": f"Bearer {key}"})
    assert act.status_code == 422 and "detail" in act.json()


def test_a_key_sends_only_the_users_it_may_act_for(served, keys):
    service, url = served
    mine, _ = keys.create(["U_CAMPER01"])
    assert ask(url, mine, "U_CAMPER01", REQUESTS[0]).fints["steering"]["applied"] is True
    decided = service.batcher.stats.decided
    with pytest.raises(openai.PermissionDeniedError) as other:
        ask(url, mine, "U_COFFEE01", REQUESTS[0])
    assert other.value.status_code == 403 and "may not act for user 'U_COFFEE01'" in other.value.message
    assert other.value.body["type"] == "permission_error"
    with pytest.raises(openai.AuthenticationError) as nobody:
        ask(url, "fints_000000000000_" + "x" * 43, "U_CAMPER01", REQUESTS[0])
    assert nobody.value.code == "invalid_api_key"
    assert service.batcher.stats.decided == decided  # refused before the batcher
    unkeyed = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": USER_MESSAGE})
    assert unkeyed.status_code == 401 and unkeyed.json()["error"]["code"] == "invalid_api_key"


def test_a_service_key_names_any_user_of_its_tenant_in_user(served, keys):
    _, url = served
    front, _ = keys.create(tenant="U_C", service=True, label="a front end")
    for user in ("U_CAMPER01", "U_COFFEE01"):
        answer = ask(url, front, user, REQUESTS[0])
        assert {e["request"] for e in answer.fints["steering"]["entries"]} <= set(MEMORY[user])
    with pytest.raises(openai.PermissionDeniedError):
        ask(url, front, "U_RUNNER01", REQUESTS[0])  # not of the tenant
    with pytest.raises(openai.PermissionDeniedError) as mixed:
        client(url, front, **{FORWARDED_USER: "U_CAMPER01"}).chat.completions.create(
            model=MODEL, messages=USER_MESSAGE, user="U_COFFEE01")
    assert FORWARDED_USER in mixed.value.message


@pytest.mark.slow
def test_the_bundled_model_behind_chat_openai_fills_a_client_tool(tmp_path):
    from steering import load_model

    loaded = load_model()
    with tiny_agent(tmp_path, loaded=loaded) as agent:
        agent.method = parse_method(DEFAULT_METHOD, loaded.model_id)  # the service's default, as `fints serve`
        with serving(service_for(agent, max_wait_s=0.0, remember=False), None) as url:
            llm = ChatOpenAI(base_url=f"{url}/v1", api_key="unused", model=loaded.model_id, max_tokens=48,
                             max_retries=0)
            reply = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke("What's the weather in Paris?")
    (call,) = reply.tool_calls
    assert call["name"] == "get_weather" and "paris" in call["args"]["city"].lower()
    assert reply.response_metadata["finish_reason"] == "tool_calls"
