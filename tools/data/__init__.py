"""The shop's data: a PersonalWAB-format generator, loader, importer and statistics.

`generate_dataset` writes a synthetic set whose users ask for tools in personal,
implicit ways; `load_dataset` reads and validates any set (generated or imported);
`import_pwab` converts real PersonalWAB files. `tools.data.stats.dataset_stats`
(kept out of this module so importing it stays light) measures how much
personalization matters on a set.
"""

from tools.data.generate import generate_dataset
from tools.data.importer import import_pwab
from tools.data.records import (
    PROFILE_KEYS,
    TASK_TYPES,
    TOOL_FOR_TYPE,
    GoldCall,
    HiddenPreferences,
    HistoryRequest,
    Interaction,
    Manifest,
    Mode,
    Product,
    ProfileRecord,
    Review,
    Target,
    Task,
    UserProfile,
    Voice,
)
from tools.data.store import DataError, Dataset, load_dataset

__all__ = [
    "PROFILE_KEYS",
    "TASK_TYPES",
    "TOOL_FOR_TYPE",
    "DataError",
    "Dataset",
    "GoldCall",
    "HiddenPreferences",
    "HistoryRequest",
    "Interaction",
    "Manifest",
    "Mode",
    "Product",
    "ProfileRecord",
    "Review",
    "Target",
    "Task",
    "UserProfile",
    "Voice",
    "generate_dataset",
    "import_pwab",
    "load_dataset",
]
