"""Fuzzing (hypothesis, bounded): the service API, tool arguments, vector files and the
PersonalWAB importer. Whatever comes in: an answer or a clear error, no crash, nothing
stored half."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.serve_app import ServiceThread, create_app
from steering import SteeringVector, VectorError
from tests.helpers.serve_fixtures import seed_memory, service_for, tiny_agent
from tools.registry import TOOL_NAMES

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
TOOLS = list(TOOL_NAMES)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with tiny_agent(tmp_path_factory.mktemp("fuzz"), online_memory=False) as agent:
        seed_memory(agent.store)
        yield agent


@pytest.fixture(scope="module")
def service(agent):
    service = service_for(agent, max_wait_s=0.0, remember=False)
    yield service
    service.close()


@pytest.fixture(scope="module")
def url(service):
    with ServiceThread(create_app(service)) as url:
        yield url


bodies = st.fixed_dictionaries({}, optional={
    "user_id": st.sampled_from(["U_CAMPER01", "U_NOBODY", ""]) | st.text(max_size=70) | json_values,
    "request": st.text(min_size=0, max_size=60) | st.just("x" * 2001) | json_values,
    "track": st.sampled_from(["single", "multi"]) | json_values,
    "method": st.sampled_from(["zero-shot", "prompt-k1", "steer-attn-mean", "nope"]) | json_values,
    "execute": st.just(False) | json_values,
}) | json_values


@FUZZ
@given(body=bodies)
def test_service_api_answers_or_refuses_clearly(url, body):
    answer = httpx.post(f"{url}/v1/act", json=body, timeout=120)
    assert answer.status_code in (200, 422), answer.text
    payload = answer.json()
    if answer.status_code == 200:
        assert {"call", "steering", "malformed", "result"} <= set(payload)
        assert payload["call"] is None or payload["call"]["name"] in TOOLS
    else:
        assert payload["detail"]  # says what was wrong


@FUZZ
@given(raw=st.binary(max_size=200))
def test_service_api_survives_raw_bytes(url, raw):
    answer = httpx.post(f"{url}/v1/act", content=raw, headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code in (200, 400, 422)  # 400: not UTF-8 JSON at all
    assert answer.json()["detail"] if answer.status_code != 200 else True


@FUZZ
@given(name=st.sampled_from(TOOLS) | st.text(max_size=20),
       args=st.dictionaries(st.sampled_from(["query", "product_sequence", "review", "product_asin", "content"])
                            | st.text(max_size=8), json_values, max_size=3))
def test_tool_arguments_give_a_result_or_an_error_text(service, name, args):
    result = service.execute("U_CAMPER01", "fuzz", {"name": name, "args": args})
    assert isinstance(result.ok, bool) and isinstance(result.text, str)
    if not result.ok:
        assert result.text.startswith("Error")


@pytest.fixture(scope="module")
def vector_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("vec") / "v.safetensors"
    SteeringVector({"attn.1": torch.ones(32), "mlp.1": torch.zeros(32)}, "tiny-gemma3", 32).save(path)
    return path.read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 10_000) | st.none(), noise=st.binary(max_size=64))
def test_vector_files_load_or_raise_vector_error(vector_bytes, edits, cut, noise):
    data = bytearray(vector_bytes)
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data[:cut]) + noise if cut is not None else bytes(data)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzzed.safetensors"
        path.write_bytes(data)
        try:
            vector = SteeringVector.load(path)
        except VectorError as error:
            assert "fuzzed.safetensors" in str(error)
        else:
            assert vector.hidden_size > 0 and vector.tensors


@pytest.fixture(scope="module")
def pwab_files(tmp_path_factory) -> dict[str, object]:
    from tools.shop.sample import write_sample_dataset

    root = write_sample_dataset(tmp_path_factory.mktemp("pwab"))
    names = ["user_profiles.json", "products.json", "user_history.json", "user_instructions.json"]
    return {name: json.loads((root / name).read_text()) for name in names if (root / name).exists()}


def _replace_somewhere(document: object, path: list[int], value: object) -> object:
    """Replace the node reached by following `path` (indices modulo each container's size)."""
    if not path or not isinstance(document, (dict, list)) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[key] = _replace_somewhere(document[key], path[1:], value)
    return copy


@FUZZ
@given(target=st.sampled_from(["user_profiles.json", "products.json", "user_history.json",
                               "user_instructions.json"]),
       path=st.lists(st.integers(0, 50), max_size=6), value=json_values,
       as_bytes=st.text(max_size=40).map(str.encode) | st.none())
def test_importer_imports_whole_or_refuses_with_a_data_error(pwab_files, target, path, value, as_bytes):
    from tools.data import DataError, load_dataset
    from tools.data.importer import import_pwab

    scratch = Path(tempfile.mkdtemp())
    try:
        source = scratch / "src"
        source.mkdir()
        for name, document in pwab_files.items():
            if name == target:
                content = as_bytes if as_bytes is not None else json.dumps(_replace_somewhere(document, path, value)).encode()
            else:
                content = json.dumps(document).encode()
            (source / name).write_bytes(content)
        out = scratch / "out"
        try:
            import_pwab(source, out)
        except DataError as error:
            assert str(error)
            assert not out.exists() or not any(out.iterdir()), "a refused import left files behind"
        else:
            load_dataset(out)  # what was written is whole and valid
    finally:
        shutil.rmtree(scratch)


def test_importer_refuses_a_file_that_is_not_utf8(tmp_path, pwab_files):
    from tools.data import DataError
    from tools.data.importer import import_pwab

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "user_profiles.json").write_bytes(b"\x80{}")
    with pytest.raises(DataError, match="user_profiles.json: not UTF-8"):
        import_pwab(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
