"""`fints memory ...` end to end through the real dispatcher."""

from __future__ import annotations

import json

from agent.cli import main
from memory import MemoryStore
from memory.synthetic import random_entries


def _store(path):
    with MemoryStore(path, "toy-model", 8) as store:
        store.add(random_entries(["alice", "bob"], 3, 8, seed=31))


def test_stats_audit_export_forget_import_expire(tmp_path, capsys):
    path = str(tmp_path / "mem")
    _store(path)
    assert main(["memory", "stats", "--json", "--store", path]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["users"], stats["superseded_rate"]) == (6, 2, 0.0)
    assert main(["memory", "audit", "--user", "alice", "--json", "--store", path]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and {r["user_id"] for r in rows} == {"alice"}
    file = str(tmp_path / "alice.safetensors")
    assert main(["memory", "export", "--user", "alice", "--out", file, "--store", path]) == 0
    assert main(["memory", "forget", "--user", "alice", "--store", path]) == 0
    out = capsys.readouterr().out
    assert "3 entries deleted, 0 left" in out and "disk scan after: clean" in out
    assert main(["memory", "import", file, "--user", "alice", "--store", path]) == 0
    assert "imported 3 entries" in capsys.readouterr().out
    assert main(["memory", "expire", "--max-age", "30d", "--store", path]) == 0
    assert "6 entries deleted" in capsys.readouterr().out


def test_clear_errors(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "mem")
    assert main(["memory", "stats", "--store", path]) == 1
    assert "no memory store" in capsys.readouterr().err
    _store(path)
    assert main(["memory", "expire", "--max-age", "soon", "--store", path]) == 1
    assert "unit" in capsys.readouterr().err
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    assert main(["memory", "import", str(tmp_path / "junk.safetensors"), "--user", "alice", "--store", path]) == 1
    assert "not a readable" in capsys.readouterr().err
    monkeypatch.setenv("FINTS_MEMORY_DIR", path)  # the env var names the default store
    assert main(["memory", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 6


def test_build_layers_take_lists_and_ranges(tmp_path, capsys):
    import pytest

    from agent.memory_cli import parse_layers
    from memory.entry import MemoryInputError

    assert parse_layers("14") == [14] and parse_layers("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_layers("6, 10,6") == [6, 10]
    for bad in ("", "6,x", "3-1", "-2", "1-"):
        with pytest.raises(MemoryInputError, match="ranges like"):
            parse_layers(bad)
    from tools.data import generate_dataset

    data = generate_dataset(tmp_path / "data", users=6, seed=1)
    assert main(["memory", "build", "--data", str(data), "--layers", "3-1", "--store", str(tmp_path / "m")]) == 1
    assert "ranges like 6,10,14 or 0-14" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # refused before anything was made
