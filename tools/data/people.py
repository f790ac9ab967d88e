"""Synthetic users: hidden preferences, the public profile derived from them, their voice.

Hidden preferences are the single source of truth; the profile (what the agent may see)
is a lossy summary of them, and histories, reviews and requests are all drawn from them.
"""

from __future__ import annotations

import random

from tools.data import vocab
from tools.data.catalog import Catalog, CatalogEntry
from tools.data.records import HiddenPreferences, Mode, Voice
from tools.registry import TASK_TYPES

PRICE_BANDS = ("low", "mid", "high")
# Quantile ranges (within a category) each price band prefers.
BAND_RANGES = {"low": (0.0, 0.4), "mid": (0.25, 0.75), "high": (0.6, 1.0)}


def make_user_id(rng: random.Random) -> str:
    """A PersonalWAB-style user id: 28 uppercase alphanumerics starting with 'A'."""
    return "A" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(27))


def hidden_preferences(
    rng: random.Random, user_id: str, catalog: Catalog, start: int, span_ms: int, sparse: bool
) -> HiddenPreferences:
    """Draw one user's hidden preferences; `start`/`span_ms` bound their history's time."""
    names = sorted(catalog.brands)
    categories = rng.sample(names, rng.randint(2, 4))
    brands = {c: rng.sample(catalog.brands[c], rng.randint(1, 3)) for c in categories}
    liked = {c: rng.sample(catalog.spec(c).features, 2) for c in categories}
    band = rng.choice(PRICE_BANDS)

    drifts = rng.random() < 0.2
    drift_ts = start + int(span_ms * rng.uniform(0.45, 0.8)) if drifts else None
    brands_after = dict(brands)
    band_after = band
    if drifts:
        shifted = rng.choice(categories)
        others = [b for b in catalog.brands[shifted] if b not in brands[shifted]]
        brands_after = {**brands, shifted: rng.sample(others, len(brands[shifted]))}
        band_after = rng.choice([b for b in PRICE_BANDS if b != band])

    voice_name, tone_words, _ = rng.choice(vocab.VOICES)
    rating_mean = {"upbeat": 4.6, "warm": 4.4, "critical": 2.8}.get(voice_name, 3.9)
    short = rng.random() < 0.4
    voice = Voice(
        style=voice_name,
        tone_words=list(tone_words),
        focus=rng.sample(vocab.ASPECTS, 2),
        phrases=rng.sample(vocab.SIGNATURE_PHRASES, 2),
        sentences=(1, 2) if short else (3, 5),
        rating_mean=rating_mean,
        exclaims=rng.random() < 0.4,
    )
    return HiddenPreferences(
        user_id=user_id,
        categories=categories,
        brands=brands,
        liked_features=liked,
        price_band=band,
        drift_timestamp=drift_ts,
        brands_after_drift=brands_after,
        price_band_after_drift=band_after,
        voice=voice,
        modes=_modes(rng, categories),
        greeting=rng.choice(vocab.GREETINGS),
        signoff=rng.choice(vocab.SIGNOFFS),
        subject_form=rng.choice(vocab.SUBJECT_FORMS),
        sparse=sparse,
    )


def _modes(rng: random.Random, categories: list[str]) -> list[Mode]:
    """One asking habit for all categories, or 2-3 habits split over the categories."""
    count = 1
    if len(categories) >= 2 and rng.random() < 0.25:
        count = rng.randint(2, min(3, len(categories)))
    families = rng.sample(range(len(vocab.ASKING_FAMILIES)), 3 * count)
    modes = []
    for i in range(count):
        covered = categories[i::count]
        asking = dict(zip(TASK_TYPES, families[3 * i: 3 * i + 3], strict=True))
        modes.append(Mode(categories=covered, asking=asking))
    return modes


def profile(rng: random.Random, prefs: HiddenPreferences) -> dict[str, str]:
    """The public PersonalWAB profile: a summary the agent may read, less than the truth."""
    brands = sorted({b for bs in prefs.brands.values() for b in bs})
    style = next(v[2] for v in vocab.VOICES if v[0] == prefs.voice.style)
    sensitivity = {"low": "High", "mid": "Medium", "high": "Low"}[prefs.price_band]
    return {
        "Gender": rng.choice(vocab.GENDERS),
        "Age": rng.choice(vocab.AGES),
        "Occupation": rng.choice(vocab.OCCUPATIONS),
        "Price Sensitivity": sensitivity,
        "Shopping Interest": ", ".join(prefs.categories),
        "Brand Preference": ", ".join(brands),
        "Diversity Preference": rng.choice(vocab.LEVELS),
        "Interaction Complexity": "High" if len(prefs.modes) > 1 else rng.choice(vocab.LEVELS),
        "Tone and Style": style,
        "Item Reference": rng.choice(vocab.ITEM_REFERENCES),
        "Focus Aspect": ", ".join(prefs.voice.focus).title(),
    }


def write_review(
    rng: random.Random, prefs: HiddenPreferences, entry: CatalogEntry, timestamp: int
) -> dict:
    """A review of a product in the user's own voice (tone words, length, phrases, rating)."""
    voice = prefs.voice
    words = {
        "brand": entry.brand,
        "subtype": entry.subtype,
        "use": entry.use,
        "price": entry.price,
        "material": rng.choice(("build", "material", "finish")),
        "aspect": rng.choice(voice.focus),
    }
    words["Aspect"] = words["aspect"].capitalize()
    sentences = [rng.choice(vocab.REVIEW_OPENERS).format(**words)]
    for template in rng.sample(vocab.REVIEW_BODIES, rng.randint(*voice.sentences)):
        body = template.format(
            feature=rng.choice(entry.feature_keys), tone=rng.choice(voice.tone_words), **words
        )
        sentences.append(body[:1].upper() + body[1:])
    sentences.append(rng.choice(voice.phrases))
    text = " ".join(sentences)
    if voice.exclaims:
        text = text.replace(".", "!", 2)
    tone = rng.choice(voice.tone_words)
    title = rng.choice(vocab.REVIEW_TITLES).format(
        Tone=tone.capitalize(), tone=tone, **words
    )
    rating = min(5.0, max(1.0, round(rng.gauss(voice.rating_mean, 0.6))))
    return {"rating": float(rating), "title": title, "text": text, "timestamp": timestamp}
