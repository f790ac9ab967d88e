"""A rule-based simulated user for the multi-turn track.

It knows the user's hidden preferences and the task's target, answers the agent's
`respond` messages (clarifies brand, kind of product, price, features, what it wants
done, how it liked a product), judges products shown to it, and ends the episode when
satisfied (target returned, review written) or at a step limit. No model is involved:
the same seed and the same messages give the same replies.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tools.data.records import HiddenPreferences, Product, Task
from tools.registry import TOOL_FOR_TYPE

__all__ = ["STOP", "Reply", "SimulatedUser"]

STOP = "###STOP###"  # PersonalWAB's marker for a user who has ended the episode
ASIN = re.compile(r"\bB0[A-Z0-9]{8}\b")

# Topic -> words in the agent's message that ask about it (checked in this order).
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("intent", ("search or", "recommend", "suggest", "review", "what would you like me",
                "what do you want me", "which tool")),
    ("brand", ("brand", "maker", "manufacturer", "store")),
    ("price", ("price", "budget", "spend", "cost", "how much", "expensive", "cheap")),
    ("opinion", ("rate", "rating", "stars", "like it", "experience", "think of", "opinion",
                 "feel")),
    ("feature", ("feature", "specific", "must have", "requirement", "prefer", "important")),
    ("kind", ("what kind", "which kind", "what type", "category", "looking for", "what item",
              "which product", "what product", "clarify", "more detail")),
)
INTENTS = {
    "search": ("I want you to find a specific item for me.",
               "Look it up in the shop - I know roughly what I want."),
    "recommend": ("Just suggest things based on what I've bought before.",
                  "Recommendations from my past orders, please."),
    "review": ("I want to post a review of something I bought.",
               "Write up my review of it, please."),
}
PRICE_WORDS = {"low": "I'd rather keep it cheap", "mid": "Mid-range is fine",
               "high": "I don't mind paying more for quality"}


@dataclass(frozen=True)
class Reply:
    """What the user says back, and whether the episode is over."""

    text: str
    done: bool


@dataclass
class SimulatedUser:
    """One simulated user working through one task.

    `products` (optional) lets it judge products it is shown by ASIN; without it, it can
    only recognise its target.
    """

    prefs: HiddenPreferences
    task: Task
    seed: int = 0
    max_steps: int = 10
    products: dict[str, Product] = field(default_factory=dict)
    steps: int = 0
    satisfied: bool = False
    _rng: random.Random = field(init=False, repr=False)
    _clues: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.task.user_id != self.prefs.user_id:
            raise ValueError(f"task {self.task.task_id} belongs to {self.task.user_id}, "
                             f"not to {self.prefs.user_id}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        self._rng = random.Random(f"{self.seed}|{self.task.task_id}")
        kinds = ["opinion", "feature", "kind"] if self.task.type == "review" \
            else ["kind", "brand", "feature", "price"]
        self._rng.shuffle(kinds)
        self._clues = kinds

    @property
    def done(self) -> bool:
        return self.satisfied or self.steps >= self.max_steps

    def opening(self) -> str:
        """The user's first message: the task's instruction."""
        return self.task.task

    def respond(self, message: str) -> Reply:
        """Answer a message the agent sent with `respond`."""
        if self.done:
            return Reply(STOP, True)
        self.steps += 1
        shown = ASIN.findall(message)
        if shown and self.task.type != "review":
            return self._judge(shown)
        if shown:
            return self._reply(f"I'm not shopping right now. {self._answer('intent')}")
        lowered = message.lower()
        topic = next((name for name, cues in TOPICS if any(c in lowered for c in cues)), None)
        text = self._answer(topic) if topic else self._next_clue()
        return self._reply(text)

    def observe(self, tool_name: str, result: Sequence[str | dict] | str | None) -> Reply:
        """React to a tool call the agent made on the user's behalf."""
        if self.done:
            return Reply(STOP, True)
        self.steps += 1
        if self.task.type == "review":
            if tool_name == TOOL_FOR_TYPE["review"] and isinstance(result, str) and result:
                self.satisfied = True
                return self._reply("Thanks, that's posted.")
            return self._reply(f"That's not what I asked for. {self._answer('intent')}")
        if isinstance(result, Sequence) and not isinstance(result, str):
            asins = [r.get("parent_asin") if isinstance(r, dict) else r for r in result]
            return self._judge([a for a in asins if isinstance(a, str)])
        return self._reply(f"That didn't give me any products. {self._next_clue()}")

    # -- internals -------------------------------------------------------------------

    @property
    def _target(self) -> Product:
        return self.task.target.product_info

    def _reply(self, text: str) -> Reply:
        return Reply(text, self.done)

    def _judge(self, asins: list[str]) -> Reply:
        subtype = self._subtype()
        if self._target.parent_asin in asins:
            self.satisfied = True
            return self._reply(self._rng.choice((f"Yes, that {subtype} is the one. Thanks!",
                                                 "That's exactly it, thank you.")))
        first = self.products.get(asins[0]) if asins else None
        if first is None:
            return self._reply(f"None of those is it. {self._next_clue()}")
        if first.main_category != self._target.main_category:
            return self._reply(f"That's not the kind of thing I mean. {self._answer('kind')}")
        if first.store not in self._brands():
            return self._reply(f"Not that brand. {self._answer('brand')}")
        if (first.price or 0) > (self._target.price or 0) * 1.3:
            return self._reply(f"That's more than I want to spend. {self._answer('price')}")
        return self._reply(f"Close, but not the one. {self._next_clue()}")

    def _next_clue(self) -> str:
        topic = self._clues[(self.steps - 1) % len(self._clues)]
        return self._answer(topic)

    def _answer(self, topic: str) -> str:
        target = self._target
        category = target.main_category or "the shop"
        if topic == "intent":
            return self._rng.choice(INTENTS[self.task.type])
        if topic == "kind":
            return f"What I mean is {self._subtype()}, in {category}."
        if topic == "brand":
            brands = self._brands()
            if self.task.type == "review" or target.store in brands:
                return f"I usually go for {target.store}."
            return f"I usually go for {' or '.join(brands) or 'whatever is good'}."
        if topic == "price":
            band = self.prefs.price_band_at(self.task.timestamp)
            ceiling = round((target.price or 0) * 1.2)
            return f"{PRICE_WORDS[band]}, no more than about ${ceiling}."
        if topic == "feature":
            liked = self.prefs.liked_features.get(category, [])
            if not liked:
                return "Nothing special, it just has to work."
            return f"I care about {' and '.join(liked)}."
        review = self.task.target.review
        first_sentence = review.text.split(". ")[0].rstrip(".!") + "."
        return f"I'd give it {review.rating:.0f} stars. {first_sentence}"

    def _brands(self) -> list[str]:
        return self.prefs.brands_at(self.task.timestamp).get(self._target.main_category or "", [])

    def _subtype(self) -> str:
        """The kind of item as the user would say it (generated products record it)."""
        kind = self._target.details.get("Item Type Name")
        return str(kind) if kind else (self._target.main_category or "item").lower()
