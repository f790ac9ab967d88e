"""The one way interactions become steering vectors, and vectors become steering.

An entry's vectors mean something only together with what made them: the prompt
format the model decided in, the sites and layers read, and what the accepted call was
contrasted with (the negative policy). A `Learner` fixes all of these once, so every
path that writes memory (`fints memory build`, the graph's memory node, the service's
feedback, the evaluation, the demo, the example app) writes entries that mean the same
thing, and every entry records its policy by name.

Negative policies (`NEGATIVE_POLICIES`, chosen by name with `negative_policy`):

- `other-tools` (the default): the same request answered with each of the other
  tools; the vector is the mean of the differences, so it points from every other choice
  to the one this user made. Measured on the bundled model with the agent's decision
  format (docs/results.md), it is what makes the steered model pick the user's tool.
- `nearest-other-user`: the call of the most similar request of another user (MiniLM),
  or without an embedder a random other user's call of the same type.

A store holds one policy's entries: `store_negatives` reads the policy a store's entries
record, and every writer that leaves the policy out uses it (refusing another).

`Learner.steering_for` is the read side: this user's entries for this request,
retrieved, clipped, aggregated and sized by a method's settings, or a recorded reason
not to steer. Retrieval is per user and fails closed.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from memory.entry import MemoryEntry, MemoryInputError, digest_arguments, make_entry_id, to_epoch
from memory.steerer import SteeringDecision, decide_steering
from memory.store import AddReport, MemoryStore
from steering.pairs import ContrastPair as Pair  # teacher-forced texts of one contrast

log = logging.getLogger(__name__)

NEGATIVE_POLICIES = ("other-tools", "nearest-other-user")
DEFAULT_NEGATIVES = "other-tools"


Call = tuple[str, dict]  # (tool, arguments)
Extractor = Callable[[list[Pair]], list[dict[str, Any]]]
Formatter = Callable[[str, str, dict], tuple[str, str]]


def format_call(request: str, tool_name: str, arguments: dict) -> tuple[str, str]:
    """(prompt, answer) in a minimal plain format; the agent passes its own formatter
    (`agent.runtime.call_formatter`) so vectors come from the prompt it decides in."""
    prompt = f"User request: {request}\nCall: "
    answer = json.dumps(
        {"name": tool_name, "arguments": arguments}, separators=(",", ":"), ensure_ascii=False
    )
    return prompt, answer


@dataclass(frozen=True)
class Interaction:
    """One interaction a user accepted: the request and the call, with an entry id
    (a hash of user + a stable reference, so bulk builds resume) and its kind (the
    task type, which the `nearest-other-user` fallback matches on)."""

    user_id: str
    request: str
    tool: str
    arguments: dict
    timestamp: float
    entry_id: str
    kind: str = ""


def online_interaction(user_id: str, request: str, tool: str, arguments: dict,
                       timestamp: float | str | None = None) -> Interaction:
    """An interaction made now (or at `timestamp`): its id hashes the time and request."""
    when = to_epoch(timestamp)
    return Interaction(user_id, request, tool, dict(arguments), when,
                       make_entry_id(user_id, f"online:{when}:{request}"))


class NegativePolicy(Protocol):
    """What an accepted call is contrasted with; one tuple of calls per interaction
    (empty: no contrast found, the interaction is skipped)."""

    name: str

    def contrasts(self, items: Sequence[Interaction]) -> list[tuple[Call, ...]]: ...


@dataclass(frozen=True)
class OtherTools:
    tools: tuple[str, ...]
    name: str = "other-tools"

    def contrasts(self, items: Sequence[Interaction]) -> list[tuple[Call, ...]]:
        return [tuple((other, {}) for other in self.tools if other != item.tool) for item in items]


@dataclass(frozen=True)
class NearestOtherUser:
    """Needs a pool of every user's interactions (`agent.interactions.past_interactions` of
    the whole data set); with an embedder the most similar request's call, else a
    deterministic random call of the same kind."""

    pool: tuple[Interaction, ...]
    embedder: Any | None = None
    seed: int = 0
    name: str = "nearest-other-user"

    def contrasts(self, items: Sequence[Interaction]) -> list[tuple[Call, ...]]:
        if self.embedder is None:
            return [self._random(item) for item in items]
        import numpy as np

        pool_vectors = self.embedder.embed([p.request for p in self.pool])
        owners = np.array([p.user_id for p in self.pool])
        wanted = self.embedder.embed([item.request for item in items])
        out: list[tuple[Call, ...]] = []
        for row, item in enumerate(items):
            scores = pool_vectors @ wanted[row]
            scores[owners == item.user_id] = -np.inf
            best = int(np.argmax(scores)) if len(scores) else 0
            found = len(scores) and np.isfinite(scores[best])
            out.append(((self.pool[best].tool, self.pool[best].arguments),) if found else ())
        return out

    def _random(self, item: Interaction) -> tuple[Call, ...]:
        others = [(p.tool, p.arguments) for p in self.pool
                  if p.kind == item.kind and p.user_id != item.user_id]
        if not others:
            return ()
        return (random.Random(f"{self.seed}:{item.entry_id}").choice(others),)


def negative_policy(name: str, *, tools: Sequence[str] = (), pool: Sequence[Interaction] = (),
                    embedder: Any | None = None, seed: int = 0) -> NegativePolicy:
    """The policy called `name`: `other-tools` needs the tool names the agent chooses
    among; `nearest-other-user` a pool of every user's interactions."""
    if name == "other-tools":
        if len(tools) < 2:
            raise ValueError("the other-tools negative policy needs the names of at least two tools")
        return OtherTools(tuple(tools))
    if name == "nearest-other-user":
        return NearestOtherUser(tuple(pool), embedder, seed)
    raise ValueError(f"unknown negative policy {name!r}; allowed: {', '.join(NEGATIVE_POLICIES)}")


def store_negatives(store: MemoryStore, wanted: str | None = None) -> str:
    """The one negative policy that writes into `store`: the one its entries record
    (`DEFAULT_NEGATIVES` for a store that records none; the most common one, with a
    warning, for a store mixed before policies were checked), or `wanted`, which must be
    one the store records. Entries made with another policy mean something else, so a
    mismatch is refused rather than mixed in."""
    if wanted is not None and wanted not in NEGATIVE_POLICIES:
        raise MemoryInputError(f"unknown negative policy {wanted!r}; allowed: {', '.join(NEGATIVE_POLICIES)}")
    counts = store.negatives()
    if not counts:
        return wanted or DEFAULT_NEGATIVES
    if wanted is None:
        chosen = max(sorted(counts), key=counts.get)
        if len(counts) > 1:
            log.warning("memory store %s holds entries of several negative policies (%s); writing with %s",
                        store.location, ", ".join(f"{n}: {c}" for n, c in sorted(counts.items())), chosen)
        return chosen
    if wanted not in counts:
        held = " and ".join(repr(name) for name in sorted(counts))
        noun = "policy" if len(counts) == 1 else "policies"
        raise MemoryInputError(
            f"the memory store {store.location} holds entries made with the negative {noun} {held}; "
            f"entries made with {wanted!r} would mean something else. Allowed for this store: "
            f"{', '.join(sorted(counts))} (or leave the policy out); for {wanted!r} use a new store")
    return wanted


@dataclass
class BuildReport:
    interactions: int = 0
    already_present: int = 0
    added: int = 0
    superseded: int = 0
    no_contrast: int = 0


@dataclass(frozen=True)
class Learner:
    """Writes and reads one store's entries, all made the same way.

    `extract` turns pairs into vectors (`steering_extractor(model, sites, layers)`);
    `formatter` renders (request, tool, arguments) as the model sees it when deciding.
    `model` is needed to read (reference norms, device) and may be None in a learner
    that only writes."""

    store: MemoryStore
    extract: Extractor
    negatives: NegativePolicy
    formatter: Formatter = format_call
    model: Any | None = None
    fail_closed: bool = False  # a store error while reading raises instead of not steering

    @cached_property
    def reference_norms(self) -> dict[str, float]:
        """The model's reference norm per site (disk-cached by the steering core; kept
        here so a steered decision does not read the file again)."""
        from steering import reference_norms

        return reference_norms(self.model)

    # ------------------------------------------------------------------ writing
    def learn(self, user_id: str, request: str, tool: str, arguments: dict, *,
              timestamp: float | str | None = None) -> AddReport:
        """Add one accepted call made now (or at `timestamp`) as an online entry."""
        item = online_interaction(user_id, request, tool, arguments, timestamp)
        contrasts = self.negatives.contrasts([item])[0]
        if not contrasts:
            raise ValueError(f"the {self.negatives.name} policy found no contrast for this call")
        return self.store.add([self._entry(item, self._vectors([item], [contrasts])[0], "online")])

    def learn_batch(self, interactions: Sequence[Interaction], *, batch_size: int = 8,
                    source: str = "bootstrap", progress: bool = True) -> BuildReport:
        """Extract and store every interaction not yet in the store (resumable: present
        ids are skipped before any extraction)."""
        from tqdm import tqdm

        report = BuildReport(interactions=len(interactions))
        present = self.store.existing_ids([i.entry_id for i in interactions])
        pending = [i for i in interactions if i.entry_id not in present]
        report.already_present = len(interactions) - len(pending)
        with tqdm(total=len(pending), desc="memory build", unit="entry", disable=not progress) as bar:
            for start in range(0, len(pending), batch_size):
                batch = pending[start:start + batch_size]
                contrasts = self.negatives.contrasts(batch)
                kept = [(item, c) for item, c in zip(batch, contrasts) if c]
                report.no_contrast += len(batch) - len(kept)
                if kept:
                    vectors = self._vectors([i for i, _ in kept], [c for _, c in kept])
                    added = self.store.add(self._entry(item, v, source)
                                           for (item, _), v in zip(kept, vectors))
                    report.added += added.added
                    report.superseded += added.superseded
                bar.update(len(batch))
        return report

    def _vectors(self, items: Sequence[Interaction], contrasts: Sequence[tuple[Call, ...]]) -> list[dict]:
        """One extraction for all pairs of `items`; each item's vectors are the mean over
        its contrasts."""
        groups: list[list[Pair]] = []
        for item, calls in zip(items, contrasts):
            prompt, positive = self.formatter(item.request, item.tool, item.arguments)
            groups.append([Pair(prompt, positive, self.formatter(item.request, tool, args)[1])
                           for tool, args in calls])
        flat = [pair for group in groups for pair in group]
        vectors = self.extract(flat)
        if len(vectors) != len(flat):
            raise ValueError(f"extractor returned {len(vectors)} results for {len(flat)} pairs")
        out, at = [], 0
        for group in groups:
            out.append(mean_vectors(vectors[at:at + len(group)]))
            at += len(group)
        return out

    def _entry(self, item: Interaction, vectors: dict[str, Any], source: str) -> MemoryEntry:
        return MemoryEntry(
            user_id=item.user_id, key=item.request, vectors=vectors, tool=item.tool,
            args_digest=digest_arguments(item.arguments), timestamp=item.timestamp,
            source=source, entry_id=item.entry_id, negative=self.negatives.name,
        )

    # ------------------------------------------------------------------ reading
    def steering_for(self, user_id: str | None, request: str, method: Any) -> SteeringDecision:
        """This user's steering for this request under `method` (an `agent.methods.Method`:
        site, layers, retrieval and strength settings), or why there is none."""
        return decide_steering(self.store, self.model, lambda: self.reference_norms, user_id, request, method,
                               fail_closed=self.fail_closed)


def mean_vectors(vectors: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-key mean of several contrasts' vectors (one contrast: itself)."""
    if len(vectors) == 1:
        return vectors[0]
    return {key: sum(v[key] for v in vectors) / len(vectors) for key in vectors[0]}


def steering_extractor(loaded_model: Any, sites: Sequence[str], layers: Sequence[int]) -> Extractor:
    """Wrap `steering.extract_vectors` (the steering core) as an Extractor."""
    import steering

    def extract(pairs: list[Pair]) -> list[dict[str, Any]]:
        return steering.extract_vectors(loaded_model, list(pairs), list(sites), list(layers))

    return extract

