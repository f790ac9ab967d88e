"""Pydantic models of the data set's records, in PersonalWAB's layout.

The JSON files are the interface between the generator, the importer, the shop and the
memory; these models are the one place that says what a valid record is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskType = Literal["search", "recommend", "review"]  # tools.registry.TASK_TYPES

PROFILE_KEYS: tuple[str, ...] = (
    "Gender", "Age", "Occupation", "Price Sensitivity", "Shopping Interest",
    "Brand Preference", "Diversity Preference", "Interaction Complexity", "Tone and Style",
    "Item Reference", "Focus Aspect",
)


class Product(BaseModel):
    """One catalog product. Extra keys (real PersonalWAB has images, categories...) are kept."""

    model_config = ConfigDict(extra="allow")

    title: str
    parent_asin: str = Field(min_length=1)
    main_category: str | None
    average_rating: float | None = Field(default=None, ge=0, le=5)
    rating_number: int | None = Field(default=None, ge=0)
    price: float | None = Field(default=None, ge=0)
    store: str | None
    features: list[str]
    description: list[str]
    details: dict


class Review(BaseModel):
    model_config = ConfigDict(extra="allow")

    rating: float = Field(ge=0, le=5)
    title: str
    text: str
    timestamp: int = Field(ge=0)


class GoldCall(BaseModel):
    """The call that solves a task: a tool name and its arguments."""

    name: str
    arguments: dict


class HistoryRequest(BaseModel):
    """The request that led to a past interaction, so that even a user with no train
    tasks (held out) shows how they ask for each tool. Generated sets only."""

    task: str = Field(min_length=1)
    type: TaskType
    gold_call: GoldCall


class Interaction(BaseModel):
    """A product the user bought and the review they wrote: one step of their history.
    `request` is absent in real PersonalWAB data."""

    product_info: Product
    review: Review
    request: HistoryRequest | None = None


class UserProfile(BaseModel):
    """PersonalWAB's eleven profile fields, all free text."""

    model_config = ConfigDict(populate_by_name=True)

    gender: str = Field(alias="Gender")
    age: str = Field(alias="Age")
    occupation: str = Field(alias="Occupation")
    price_sensitivity: str = Field(alias="Price Sensitivity")
    shopping_interest: str = Field(alias="Shopping Interest")
    brand_preference: str = Field(alias="Brand Preference")
    diversity_preference: str = Field(alias="Diversity Preference")
    interaction_complexity: str = Field(alias="Interaction Complexity")
    tone_and_style: str = Field(alias="Tone and Style")
    item_reference: str = Field(alias="Item Reference")
    focus_aspect: str = Field(alias="Focus Aspect")


class ProfileRecord(BaseModel):
    user_profile: UserProfile


class Target(BaseModel):
    product_info: Product
    review: Review


class Task(BaseModel):
    """One instruction a user gives, with what would satisfy it."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    user_id: str
    task: str = Field(min_length=1)
    type: TaskType
    timestamp: int = Field(ge=0)
    target: Target
    gold_call: GoldCall | None = None


class Manifest(BaseModel):
    """What a data set is and where it came from."""

    version: str
    source: Literal["generated", "pwab-import"]
    seed: int | None
    counts: dict[str, int]
    held_out_users: list[str]


class Voice(BaseModel):
    """How a user writes reviews."""

    style: str
    tone_words: list[str]
    focus: list[str]  # the aspects their reviews talk about
    phrases: list[str]
    sentences: tuple[int, int]
    rating_mean: float
    exclaims: bool


class Mode(BaseModel):
    """A behavioural mode: the categories it covers and how the user asks for each tool."""

    categories: list[str]
    asking: dict[str, int]  # task type -> index into vocab.ASKING_FAMILIES


class HiddenPreferences(BaseModel):
    """The generator's ground truth about one user; never shown to the agent."""

    user_id: str
    categories: list[str]
    brands: dict[str, list[str]]
    liked_features: dict[str, list[str]]
    price_band: Literal["low", "mid", "high"]
    drift_timestamp: int | None
    brands_after_drift: dict[str, list[str]]
    price_band_after_drift: Literal["low", "mid", "high"]
    voice: Voice
    modes: list[Mode]
    greeting: str
    signoff: str
    subject_form: str
    sparse: bool

    def brands_at(self, timestamp: int) -> dict[str, list[str]]:
        """Favourite brands per category in force at a time (after drift if drifted)."""
        drifted = self.drift_timestamp is not None and timestamp >= self.drift_timestamp
        return self.brands_after_drift if drifted else self.brands

    def price_band_at(self, timestamp: int) -> str:
        drifted = self.drift_timestamp is not None and timestamp >= self.drift_timestamp
        return self.price_band_after_drift if drifted else self.price_band

    def mode_for(self, category: str) -> Mode:
        """The mode that covers a category (the first mode for categories outside all)."""
        for mode in self.modes:
            if category in mode.categories:
                return mode
        return self.modes[0]


def derived_gold_call(task: Task, history: list[Interaction]) -> GoldCall | None:
    """The gold call PersonalWAB's grading implies for a task that records none.

    Recommend: the user's purchases strictly before the task (the latest
    `MAX_SEQUENCE`), None without any; review: the review the user really wrote;
    search: None, because PersonalWAB records no query (what a learner does without
    one is its own choice, `agent.interactions.gold_call`). The importer and the bulk
    memory build both derive through here, so a task means the same call to both.
    """
    from tools.registry import MAX_SEQUENCE, TOOL_FOR_TYPE

    if task.type == "recommend":
        before = [h.product_info.parent_asin for h in history if h.review.timestamp < task.timestamp]
        if not before:
            return None
        arguments: dict = {"product_sequence": before[-MAX_SEQUENCE:]}
    elif task.type == "review":
        arguments = {"review": task.target.review.text}
    else:
        return None
    return GoldCall(name=TOOL_FOR_TYPE[task.type], arguments=arguments)
