"""How a user phrases a request: their habit of asking, applied to one task.

The same families of phrasing serve every task type across the population; which
family means which tool is a per-user (and per-mode) habit. So the wording alone does
not reveal the tool, while the user's own earlier requests do.
"""

from __future__ import annotations

import random

from tools.data import vocab
from tools.data.catalog import CatalogEntry
from tools.data.records import HiddenPreferences

EXPLICIT_RATE = 0.08


def instruction(
    rng: random.Random, prefs: HiddenPreferences, task_type: str, entry: CatalogEntry
) -> str:
    """The request text a user types for a task of `task_type` about `entry`'s kind of item."""
    subject = prefs.subject_form.format(subtype=entry.subtype, use=entry.use)
    if rng.random() < EXPLICIT_RATE:
        sentence = rng.choice(vocab.EXPLICIT_ASKS[task_type]).format(subject=subject)
    else:
        family = vocab.ASKING_FAMILIES[prefs.mode_for(entry.category).asking[task_type]]
        sentence = rng.choice(family).format(subject=subject)
    if prefs.greeting and prefs.greeting.rstrip().endswith((",", "so")):
        sentence = sentence[:1].lower() + sentence[1:]
    else:
        sentence = sentence[:1].upper() + sentence[1:]
    return f"{prefs.greeting}{sentence}{prefs.signoff}"
