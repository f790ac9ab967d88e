"""The shop's data: a PersonalWAB-format generator, loader, importer and statistics.

`generate_dataset` writes a synthetic set whose users ask for tools in personal,
implicit ways; `load_dataset` reads and validates any set (generated or imported);
`import_pwab` converts real PersonalWAB files. `tools.data.stats.dataset_stats`
(kept out of this module so importing it stays light) measures how much
personalization matters on a set.
Names load on first use, so `fints --help` stays fast.
"""

from common.lazy import lazy_exports

_EXPORTS = {
    "generate_dataset": "tools.data.generate",
    "import_pwab": "tools.data.importer",
    "DataError": "tools.data.store",
    "Dataset": "tools.data.store",
    "load_dataset": "tools.data.store",
    "PROFILE_KEYS": "tools.data.records",
    "TASK_TYPES": "tools.registry",
    "TOOL_FOR_TYPE": "tools.registry",
    "GoldCall": "tools.data.records",
    "HiddenPreferences": "tools.data.records",
    "HistoryRequest": "tools.data.records",
    "Interaction": "tools.data.records",
    "Manifest": "tools.data.records",
    "Mode": "tools.data.records",
    "Product": "tools.data.records",
    "ProfileRecord": "tools.data.records",
    "Review": "tools.data.records",
    "Target": "tools.data.records",
    "Task": "tools.data.records",
    "UserProfile": "tools.data.records",
    "Voice": "tools.data.records",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
