"""Issue 18, finding 1, on the agent service: API keys bound to users (or a front end's
tenant), checked before anything runs; real HTTP on loopback, a tiny model, real Chroma."""

from __future__ import annotations

import stat

import httpx

from agent.cli import main
from tests.helpers.serve import agent, keys, served, serving  # noqa: F401  (fixtures)
from tests.helpers.serve_fixtures import MEMORY, service_for
from tools.auth import FORWARDED_USER, INSECURE_WARNING, server_keys

ACCEPTED = {"name": "get_recommendations_by_history", "args": {}}
SERVED_SETTINGS = {"max_wait_s": 0.0}


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def secret_of(key: str) -> str:
    """The secret of `fints_<id>_<secret>`: the whole tail, since the secret itself may hold "_"."""
    secret = key.split("_", 2)[2]
    assert len(secret) == 43
    return secret


def act(url: str, user: str, headers: dict, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/act", json={"user_id": user, "request": "need something for camping trips",
                                             "execute": False, **extra}, headers=headers, timeout=300)


def test_keys_are_stored_hashed_and_private(keys):
    key, record = keys.create(["U_CAMPER01"], label="test")
    text = keys.path.read_text()
    assert secret_of(key) not in text and record.digest in text
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert keys.verify(key) == record and keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_no_key_no_service(served, agent):
    service, url = served
    decided = service.batcher.stats.decided
    for path in ("/v1/act", "/v1/episode", "/v1/feedback"):
        answer = httpx.post(url + path, json={"user_id": "U_CAMPER01", "request": "x", "call": ACCEPTED})
        assert answer.status_code == 401 and "API key is required" in answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        wrong = httpx.post(url + path, json={}, headers=bearer("fints_000000000000_" + "x" * 43))
        assert wrong.status_code == 401 and "not valid" in wrong.text  # before the body is even validated
    assert service.batcher.stats.decided == decided
    assert httpx.get(url + "/v1/health").json()["auth"] == "keys"


def test_a_key_acts_only_for_its_users_and_touches_nothing_else(served, agent, keys):
    service, url = served
    key, _ = keys.create(["U_CAMPER01"])
    mine = act(url, "U_CAMPER01", bearer(key))
    assert mine.status_code == 200, mine.text
    entries = mine.json()["steering"]["entries"]
    assert {e["request"] for e in entries} <= set(MEMORY["U_CAMPER01"])  # own past requests, explained
    decided = service.batcher.stats.decided
    other = act(url, "U_COFFEE01", bearer(key))
    assert other.status_code == 403 and "may not act for user 'U_COFFEE01'" in other.text
    assert service.batcher.stats.decided == decided  # refused before the batcher
    before = agent.store.count("U_COFFEE01")
    poisoned = httpx.post(url + "/v1/feedback", headers=bearer(key), json={
        "user_id": "U_COFFEE01", "request": "always recommend for me", "call": ACCEPTED})
    assert poisoned.status_code == 403
    thread = httpx.post(url + "/v1/episode", headers=bearer(key), json={
        "user_id": "U_COFFEE01", "request": "coffee", "thread_id": "t-auth"})
    assert thread.status_code == 403 and len(service.threads) == 0
    agent.flush_memory(timeout=60)
    assert agent.store.count("U_COFFEE01") == before


def test_a_revoked_key_is_refused_at_the_next_request(served, keys, capsys):
    _, url = served
    key, record = keys.create(["U_RUNNER01"])
    assert act(url, "U_RUNNER01", bearer(key)).status_code == 200
    assert main(["keys", "revoke", record.key_id, "--keys", str(keys.path)]) == 0  # the command, another ring
    assert "revoked" in capsys.readouterr().out
    assert act(url, "U_RUNNER01", bearer(key)).status_code == 401


def test_a_service_key_acts_for_the_user_its_front_end_forwards(served, keys):
    _, url = served
    key, _ = keys.create(tenant="U_C", service=True, label="web front end")
    assert act(url, "U_CAMPER01", bearer(key, **{FORWARDED_USER: "U_CAMPER01"})).status_code == 200
    assert act(url, "U_COFFEE01", bearer(key, **{FORWARDED_USER: "U_COFFEE01"})).status_code == 200
    mixed = act(url, "U_COFFEE01", bearer(key, **{FORWARDED_USER: "U_CAMPER01"}))
    assert mixed.status_code == 403 and FORWARDED_USER in mixed.text
    unnamed = act(url, "U_CAMPER01", bearer(key))
    assert unnamed.status_code == 403 and "must name the end user" in unnamed.text
    outside = act(url, "U_RUNNER01", bearer(key, **{FORWARDED_USER: "U_RUNNER01"}))
    assert outside.status_code == 403  # not of the tenant


def test_steering_texts_can_be_turned_off(agent, keys):
    key, _ = keys.create(["U_CAMPER01"])
    with serving(service_for(agent, max_wait_s=0.0, remember=False, steering_texts=False), keys) as url:
        body = act(url, "U_CAMPER01", bearer(key)).json()
    assert body["steering"]["applied"] and body["steering"]["entries"]
    assert all(set(e) == {"id", "weight", "similarity"} for e in body["steering"]["entries"])


def test_servers_refuse_to_start_without_keys_unless_insecure(tmp_path, capsys):
    code = main(["serve", "--data", str(tmp_path), "--keys", str(tmp_path / "none.json")])
    err = capsys.readouterr().err
    assert code == 1 and "no API keys in" in err and "fints keys create" in err and "--insecure" in err
    assert server_keys(str(tmp_path / "none.json"), insecure=True) is None
    assert INSECURE_WARNING in capsys.readouterr().err


def test_keys_commands(tmp_path, capsys):
    path = str(tmp_path / "k.json")
    assert main(["keys", "create", "--users", "U1,U2", "U3", "--keys", path]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[1]
    assert "for U1, U2, U3" in out and key.startswith("fints_")
    assert main(["keys", "create", "--tenant", "acme-", "--keys", path]) == 1
    assert "--tenant is for service keys" in capsys.readouterr().err
    assert main(["keys", "create", "--users", "bad id!", "--keys", path]) == 1
    assert "is not valid" in capsys.readouterr().err
    assert main(["keys", "revoke", "nope", "--keys", path]) == 1
    assert "no key 'nope'" in capsys.readouterr().err
    assert main(["keys", "list", "--json", "--keys", path]) == 0
    listed = capsys.readouterr().out
    assert "digest" not in listed and secret_of(key) not in listed and '"U3"' in listed
