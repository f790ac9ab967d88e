"""agent.config: the user's defaults file on top of the packaged agent/defaults.json;
the sweep writes the user file, never the package."""

from __future__ import annotations

import json

import pytest

from agent.cli import main
from agent.config import ConfigError, layered_defaults, packaged_path, user_config_path
from agent.methods import parse_method

MODEL = "google/gemma-3-270m:gguf-q4_k_m"


def test_writing_defaults_leaves_the_package_unchanged_and_the_user_file_overrides(tmp_path, monkeypatch):
    from evals.experiments.sweep import write_defaults

    user = tmp_path / "cfg" / "defaults.json"
    monkeypatch.setenv("FINTS_CONFIG", str(user))
    packaged = packaged_path().read_bytes()
    before = parse_method("steer-whole-attentive", MODEL)
    mlp_before = parse_method("steer-mlp-attentive", MODEL)
    entry = write_defaults(MODEL, {"whole": {"alpha": 0.125, "layers": [3], "site": "whole",
                                             "function_acc": 0.9}})
    assert packaged_path().read_bytes() == packaged
    assert entry == {"sites": {"whole": {"alpha": 0.125, "layers": [3]}}}
    assert json.loads(user.read_text()) == {MODEL: entry}
    after = parse_method("steer-whole-attentive", MODEL)
    assert (after.alpha, after.layers) == (0.125, (3,)) != (before.alpha, before.layers)
    assert after.top_k == before.top_k  # what the user file does not set stays the package's
    mlp = parse_method("steer-mlp-attentive", MODEL)
    assert (mlp.alpha, mlp.layers) == (mlp_before.alpha, mlp_before.layers)  # another site keeps its setting
    entry = write_defaults(MODEL, {"attn": {"alpha": 2.0, "layers": [6, 10]}})
    assert entry["sites"] == {"whole": {"alpha": 0.125, "layers": [3]}, "attn": {"alpha": 2.0, "layers": [6, 10]}}
    assert parse_method("steer-attn-mean", MODEL).layers == (6, 10)
    assert parse_method("steer-whole-mean", MODEL).alpha == 0.125  # writing one site kept the other
    entry = write_defaults(MODEL, {"whole-mean": {"alpha": 0.25}})  # the mean's own strength
    assert entry["sites"]["whole-mean"] == {"alpha": 0.25} and entry["sites"]["whole"]["alpha"] == 0.125
    mean = parse_method("steer-whole-mean", MODEL)
    assert (mean.alpha, mean.layers) == (0.25, (3,))  # its own alpha, its site's layers
    assert parse_method("steer-whole-attentive", MODEL).alpha == 0.125
    other = parse_method("steer-whole-attentive", "another-model")
    assert other.alpha == before.alpha  # a model's own entry applies to that model alone
    _, sources = layered_defaults(MODEL)
    assert sources["sites"] == f"{user} [{MODEL}]" and sources["top_k"] == "agent/defaults.json [*]"


def test_the_flag_beats_the_environment_which_beats_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FINTS_CONFIG")
    assert user_config_path() == tmp_path / "xdg" / "fints" / "defaults.json"
    monkeypatch.setenv("FINTS_CONFIG", str(tmp_path / "env.json"))
    assert user_config_path() == tmp_path / "env.json"
    assert user_config_path(tmp_path / "flag.json") == tmp_path / "flag.json"
    (tmp_path / "env.json").write_text(json.dumps({"*": {"alpha": 0.75}}))
    (tmp_path / "flag.json").write_text(json.dumps({"*": {"alpha": 0.25}}))
    assert layered_defaults(MODEL)[0]["alpha"] == 0.75
    assert layered_defaults(MODEL, tmp_path / "flag.json")[0]["alpha"] == 0.25


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"*": 3}'])
def test_a_malformed_user_file_names_the_file(tmp_path, text, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=str(bad)):
        layered_defaults(MODEL, bad)
    assert main(["config", "--config", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


def test_fints_config_shows_where_each_setting_came_from(tmp_path, capsys):
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({MODEL: {"alpha": 0.3}}))
    assert main(["config", "--config", str(user), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["settings"]["alpha"] == {"value": 0.3, "from": f"{user} [{MODEL}]"}
    assert shown["settings"]["layers"]["from"] == "agent/defaults.json [*]"
