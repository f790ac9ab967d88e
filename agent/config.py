"""Steering defaults in layers: the packaged `agent/defaults.json`, then the user's own
file on top. The package is never written: `fints eval --sweep --write-defaults`
writes the user file.

The user file is `--config PATH` where a command takes it, else `$FINTS_CONFIG`, else
`<user config dir>/fints/defaults.json` (`$XDG_CONFIG_HOME/fints/defaults.json` on
Linux). It has the packaged file's shape: `{"*": {...}, "<model id>": {...}}`; a model's
own entry wins over `"*"`, and the user file wins over the package, key by key. The key
`sites` holds per-site settings (`{"attn+mlp": {"alpha": 2.0, "layers": [6, 10, 14]}}`:
the sweep calibrates each site apart; `"attn+mlp-mean"` holds what differs for one
aggregation) and is merged site by site (a file that sets a site also replaces that
site's aggregation entries below it).
`fints config` shows which file each setting came from.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

CONFIG_ENV = "FINTS_CONFIG"
PACKAGED = "agent/defaults.json"


class ConfigError(ValueError):
    """A defaults file that cannot be read as a table of settings; names the file."""


def user_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the user's defaults live: `explicit`, else $FINTS_CONFIG, else the user
    config dir's fints/defaults.json (which need not exist)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("fints")) / "defaults.json"


def packaged_path() -> Path:
    return Path(str(resources.files("agent").joinpath("defaults.json")))


def read_table(path: Path) -> dict[str, dict[str, Any]]:
    """A defaults file as {model id or "*": {setting: value}}; a clear error otherwise."""
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"defaults file {path} is not valid JSON ({error})") from None
    except OSError as error:
        raise ConfigError(f"defaults file {path} cannot be read ({error.strerror or error})") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(
            f"defaults file {path} must be a JSON object of objects: "
            '{"*": {"alpha": 0.5, ...}, "<model id>": {...}}'
        )
    return table


def layered_defaults(
    model_id: str | None = None, config: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings for a model and, per setting, the file (and entry) it came from."""
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [(packaged_path(), PACKAGED)]
    user = user_config_path(config)
    if user.exists():
        layers.append((user, str(user)))
    for path, label in layers:
        table = read_table(path)
        if label == PACKAGED and "*" not in table:
            raise ConfigError(f"{PACKAGED} has no '*' entry")
        for entry in ("*", model_id):
            if entry is not None and entry in table:
                _merge(settings, table[entry])
                sources.update({key: f"{label} [{entry}]" for key in table[entry]})
    return settings, sources


def write_user_defaults(
    model_id: str, values: dict[str, Any], config: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], Path]:
    """Store `values` under the model id in the user file (made when missing); the
    packaged defaults are left as they are. Returns the model's entry and the file."""
    path = user_config_path(config)
    table = read_table(path) if path.exists() else {}
    entry = dict(table.get(model_id, {}))
    _merge(entry, values)
    table[model_id] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(table, indent=2) + "\n")
    os.replace(tmp, path)  # a crash leaves the old file or the new one
    return entry, path


def site_entry(site: str, aggregation: str = "attentive") -> str:
    """The key under `sites` that holds a steering site's calibration: the site itself for
    attentive aggregation, `"{site}-{aggregation}"` for another (a mean of entries that
    disagree steers more weakly, so it is swept apart). Site names hold no "-"."""
    return site if aggregation == "attentive" else f"{site}-{aggregation}"


def entry_site(entry: str) -> str:
    """The site a `sites` key belongs to (`site_entry` read back)."""
    return entry.split("-")[0]


def _merge(settings: dict[str, Any], values: dict[str, Any]) -> None:
    """`values` over `settings`, key by key; `sites` site by site (a file that sets one
    site's strength leaves the others' as they were). A file that sets a site replaces
    that site's aggregation entries (`"whole-mean"`) from below as well: they were
    calibrated against the site's setting it replaces."""
    for key, value in values.items():
        if key == "sites" and isinstance(value, dict):
            below = {name: entry for name, entry in settings.get("sites", {}).items()
                     if entry_site(name) not in value}
            settings["sites"] = {**below, **value}
        else:
            settings[key] = value
