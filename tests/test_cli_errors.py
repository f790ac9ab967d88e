"""Issue 18, findings 5-8, through the real `fints` dispatcher, real Chroma and real
files: memory import verifies before it writes, every error is one line and an exit
code, failed commands leave nothing behind, unknown users are reported, and `--users`
takes commas as well as spaces. Ends with a fuzz test over the argument space."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import main
from memory import MemoryStore
from agent.memory_cli import split_users
from memory.synthetic import random_entries
from memory.transfer import EXPORT_FORMAT
from tools.shop.sample import write_sample_dataset

HIDDEN = 8


def fints(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `fints ARGV` in-process: (exit code, stdout, stderr); usage errors exit 2."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def store(tmp_path) -> str:
    path = str(tmp_path / "mem")
    with MemoryStore(path, "toy-model", HIDDEN) as opened:
        opened.add(random_entries(["alice", "bob"], 3, HIDDEN, seed=31))
    return path


@pytest.fixture()
def alice_file(tmp_path, store, capsys) -> Path:
    file = tmp_path / "alice.safetensors"
    assert fints(capsys, "memory", "export", "--user", "alice", "--out", str(file), "--store", store)[0] == 0
    return file


def rewrite(source: Path, target: Path, **metadata: str) -> Path:
    """A copy of an export with some metadata fields replaced."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(source), framework="numpy") as handle:
        meta = handle.metadata()
    save_file(load_file(str(source)), str(target), metadata=meta | metadata)
    return target


# ---- finding 5: import verifies before it writes ----------------------------------------
def test_import_must_name_the_files_user_or_rewrite_it_on_record(tmp_path, store, alice_file, capsys):
    code, _, err = fints(capsys, "memory", "import", str(alice_file), "--user", "bob", "--store", store)
    assert code == 1 and "holds the entries of user 'alice', not 'bob'" in one_line_error(err)
    assert "--as bob" in err
    with MemoryStore(store, read_only=True) as opened:
        assert opened.count("bob") == 3
    code, out, _ = fints(capsys, "memory", "import", str(alice_file), "--as", "carol", "--store", store)
    assert code == 0 and "imported 3 entries for 'carol'" in out and "rewritten from 'alice'" in out
    with MemoryStore(store, read_only=True) as opened:
        assert (opened.count("alice"), opened.count("carol")) == (3, 3)
        assert not {r["entry_id"] for r in opened.audit("alice")} & {r["entry_id"] for r in opened.audit("carol")}
    code, out, _ = fints(capsys, "memory", "audit", "--user", "carol", "--store", store)
    assert code == 0 and "action=import" in out and "from_user=alice" in out and "rewritten=True" in out
    # forgetting carol forgets her audit records too: no byte of her is left
    code, out, _ = fints(capsys, "memory", "forget", "--user", "carol", "--store", store)
    assert code == 0 and "disk scan after: clean" in out
    assert "carol" not in (Path(store) / "audit.jsonl").read_text()


@pytest.mark.parametrize("metadata, fragment", [
    ({"user_id": "bob\nmallory"}, "is not a user id"),
    ({"user_id": "x" * 5000}, "is not a user id"),
    ({"user_id": "a\x00b"}, "is not a user id"),
    ({"entries": "{not json"}, "entries is not valid JSON"),
    ({"entries": "[1, 2]"}, "must be an object"),
    ({"entries": json.dumps([{"entry_id": "m1"}])}, "must be an object with the fields"),
    ({"entries": "[" * 100_000 + "]" * 100_000}, "entries is not valid JSON"),
    ({"hidden_size": "eight"}, "hidden_size"),
    ({"hidden_size": "16"}, "expected F32 or F64 [16]"),
    ({"format": "something-else"}, "is not a fints memory export"),
])
def test_a_broken_export_is_one_clear_error_and_stores_nothing(tmp_path, store, alice_file, capsys,
                                                              metadata, fragment):
    bad = rewrite(alice_file, tmp_path / "bad.safetensors", **metadata)
    target = tmp_path / "new-store"
    code, _, err = fints(capsys, "memory", "import", str(bad), "--user", "alice", "--store", str(target))
    assert code == 1 and fragment in one_line_error(err)
    assert not target.exists()  # a failed import into a new path leaves no store


def test_a_failed_import_into_an_existing_store_changes_nothing(tmp_path, store, alice_file, capsys):
    bad = rewrite(alice_file, tmp_path / "bad.safetensors", entries=json.dumps([{"nope": 1}]))
    before = sorted(p.name for p in Path(store).iterdir())
    assert fints(capsys, "memory", "import", str(bad), "--user", "alice", "--store", store)[0] == 1
    assert sorted(p.name for p in Path(store).iterdir()) == before
    assert EXPORT_FORMAT  # the files above differ from a good export only in the named field


# ---- finding 6: one line and an exit code ------------------------------------------------
def test_store_and_file_errors_are_one_line(tmp_path, store, capsys):
    missing_dir = tmp_path / "nowhere" / "a.safetensors"
    code, _, err = fints(capsys, "memory", "export", "--user", "alice", "--out", str(missing_dir), "--store", store)
    assert code == 1 and "does not exist" in one_line_error(err)
    code, _, err = fints(capsys, "memory", "stats", "--store", "http://127.0.0.1:1")
    assert code == 1 and "cannot open the memory store http://127.0.0.1:1" in one_line_error(err)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(store, corrupt)
    (corrupt / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    code, _, err = fints(capsys, "memory", "stats", "--store", str(corrupt))
    assert code == 1 and "cannot open the memory store" in one_line_error(err)
    assert sqlite3  # (the corrupt file is not an SQLite database at all)


@pytest.fixture()
def data(tmp_path) -> Path:
    return write_sample_dataset(tmp_path / "data")


def test_run_refuses_a_blank_request_before_loading_anything(data, capsys):
    code, _, err = fints(capsys, "run", "--data", str(data), "--user", "U_CAMPER01", "   ")
    assert code == 2 and "request is empty" in one_line_error(err)


def test_a_corrupt_data_file_is_one_line(data, capsys):
    (data / "user_history.json").write_text('{"U_CAMPER01": [')
    code, _, err = fints(capsys, "run", "--data", str(data), "--user", "U_CAMPER01", "a tent")
    assert code == 1 and "user_history.json: not valid JSON" in one_line_error(err)


def test_deeply_nested_json_is_a_data_error(data, tmp_path, capsys):
    (data / "products.json").write_text("[" * 200_000 + "]" * 200_000)
    code, _, err = fints(capsys, "shop", "serve", "--data", str(data), "--port", "0", "--insecure")
    warning, error = err.splitlines()
    assert warning.startswith("WARNING: --insecure: no API keys are checked")
    assert code == 2 and "nested too deeply" in one_line_error(error)
    code, _, err = fints(capsys, "shop", "import-pwab", str(data), "--out", str(tmp_path / "imported"))
    assert code == 1 and "nested too deeply" in one_line_error(err) or "missing" in err
    assert "Traceback" not in err


def test_import_pwab_onto_an_existing_file_is_one_line(data, tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    code, _, err = fints(capsys, "shop", "import-pwab", str(data), "--out", str(tmp_path / "taken"))
    assert code == 1 and one_line_error(err)
    assert (tmp_path / "taken").read_text() == "mine"


# ---- finding 7: no debris ----------------------------------------------------------------
@pytest.mark.parametrize("argv", [["forget", "--user", "alice"], ["expire", "--max-age", "30d"],
                                  ["audit", "--user", "alice"], ["stats"]])
def test_commands_on_a_missing_store_create_nothing(tmp_path, capsys, argv):
    target = tmp_path / "no-store-here"
    code, _, err = fints(capsys, "memory", *argv, "--store", str(target))
    assert code == 1 and "no memory store at" in one_line_error(err)
    assert not target.exists()


# ---- finding 8: no silent no-ops ---------------------------------------------------------
def test_unknown_users_are_reported(store, capsys):
    code, _, err = fints(capsys, "memory", "forget", "--user", "nobody", "--store", store)
    assert code == 1 and "unknown user(s) 'nobody'" in one_line_error(err)
    code, _, err = fints(capsys, "memory", "audit", "--user", "nobody", "--store", store)
    assert code == 1 and "unknown user(s) 'nobody'" in one_line_error(err)


def test_build_takes_commas_and_reports_unknown_users_before_loading_a_model(data, tmp_path, capsys):
    assert split_users(["U1,U2", "U3", " U4 , U5 "]) == ["U1", "U2", "U3", "U4", "U5"]
    target = tmp_path / "built"
    code, _, err = fints(capsys, "memory", "build", "--data", str(data), "--users", "U_CAMPER01,U_NOPE,U_GONE",
                         "--store", str(target))
    line = one_line_error(err)
    assert code == 1 and "unknown user(s) 'U_NOPE', 'U_GONE'" in line and "U_CAMPER01" not in line
    assert not target.exists()


# ---- the fuzz test -----------------------------------------------------------------------
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
VALUES = st.sampled_from(["alice", "bob", "nobody", "", " ", "alice,bob", "x" * 300, "30d", "-1d", "soon", "0", "6",
                          "{store}", "{new}", "{new}/deeper", "{file}", "{junk}", "{export}", "{dir}", "{data}",
                          "{keys}", "{new}/keys.json", "http://127.0.0.1:1", "--json"]) | st.text(max_size=12)
LIKELY = {"--store": ["{store}", "{new}"], "--user": ["alice", "bob"], "--out": ["{new}", "{dir}/copy.safetensors"],
          "FILE": ["{export}"], "--max-age": ["30d", "1h"], "--keys": ["{keys}"], "--users": ["alice", "alice,bob"],
          "--data": ["{data}"], "KEY": ["{keyid}"]}
# per command: its flags (a required one is left out now and then) and positionals
COMMANDS = {
    ("memory", "stats"): {"--store": True, "--json": None},
    ("memory", "audit"): {"--store": True, "--user": True, "--json": None},
    ("memory", "forget"): {"--store": True, "--user": True, "--server-path": False},
    ("memory", "export"): {"--store": True, "--user": True, "--out": True},
    ("memory", "import"): {"FILE": True, "--store": True, "--user": True, "--as": False, "--model": False},
    ("memory", "expire"): {"--store": True, "--max-age": True},
    ("memory", "build"): {"--data": True, "--users": True, "--store": True, "--layers": False},
    ("keys", "create"): {"--keys": True, "--users": True, "--tenant": False, "--service": None, "--label": False},
    ("keys", "revoke"): {"KEY": True, "--keys": True},
    ("keys", "list"): {"--keys": True, "--json": None},
    ("shop", "stats"): {"--data": True, "--json": None},
}


@st.composite
def argvs(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(command)
    for flag, required in COMMANDS[command].items():
        if not draw(st.booleans() if not required else st.sampled_from([True] * 9 + [False])):
            continue
        if required is None:  # a switch
            argv.append(flag)
        elif flag.isupper():  # a positional
            argv.append(draw(VALUES))
        else:
            argv += [flag, draw(st.sampled_from(LIKELY.get(flag, ["{new}"])) | VALUES)]
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(VALUES))  # a stray argument
    return argv


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("cli-fuzz")
    with MemoryStore(root / "store", "toy-model", HIDDEN) as opened:
        opened.add(random_entries(["alice", "bob"], 2, HIDDEN, seed=5))
    export = root / "alice.safetensors"
    assert main(["memory", "export", "--user", "alice", "--out", str(export), "--store", str(root / "store")]) == 0
    (root / "plain.txt").write_text("hello")
    (root / "junk.safetensors").write_bytes(b"\x00junk")
    from tools.auth import KeyRing

    _, record = KeyRing(root / "keys.json").create(["alice"])
    return {"store": root / "store", "file": root / "plain.txt", "junk": root / "junk.safetensors",
            "export": export, "dir": root, "data": write_sample_dataset(root / "data"), "keys": root / "keys.json",
            "keyid": record.key_id}


def _snapshot(paths: list[Path]) -> set[Path]:
    """Every file and directory at or under the paths (a name too long to exist is none)."""
    found = set()
    for path in paths:
        try:
            if path.exists():
                found |= {path, *path.rglob("*")} if path.is_dir() else {path}
        except OSError:
            continue
    return found


@FUZZ
@given(argv=argvs())
def test_any_arguments_exit_0_1_or_2_without_traceback_or_debris(fuzz_files, capsys, monkeypatch, argv):
    scratch = Path(tempfile.mkdtemp(prefix="fints-cli-fuzz-"))
    try:
        monkeypatch.setenv("FINTS_KEYS", str(scratch / "keys.json"))
        monkeypatch.setenv("FINTS_MEMORY_DIR", str(scratch / "default-store"))
        shutil.copytree(fuzz_files["store"], scratch / "store")  # each example starts from the same store
        names = {f"{{{k}}}": str(v) for k, v in fuzz_files.items()} | {"{new}": str(scratch / "new"),
                                                                        "{store}": str(scratch / "store")}
        argv = [next((arg.replace(k, v) for k, v in names.items() if k in arg), arg) for arg in argv]
        given_paths = [scratch / arg for arg in argv if arg and not arg.startswith("-")
                       and not arg.startswith(str(fuzz_files["dir"]))] + [scratch / "default-store"]
        before = _snapshot(given_paths)
        with contextlib.chdir(scratch):  # relative paths land in the scratch directory, not the repository
            code, _, err = fints(capsys, *argv)
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code != 0:
            assert _snapshot(given_paths) <= before, (argv, "a failed command left files behind")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
