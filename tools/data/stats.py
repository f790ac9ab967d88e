"""Statistics that show whether personalization matters on a data set.

Two questions, two pairs of numbers:
- Can the tool be read off the request? A bag-of-words classifier trained on all train
  requests (`keyword_tool_acc`) against a per-user habit model that looks only at that
  user's own earlier requests: their train tasks and the requests behind their history
  (`habit_tool_acc`), and for held-out users, who have no train tasks, their history
  requests alone (`habit_tool_acc_heldout`).
- Does a preference-aware query find the target? The target's mean 0-based BM25 rank
  for the bare request (`bm25_target_rank_bare`) and for the gold query
  (`bm25_target_rank_pref`).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import NamedTuple

import bm25s
import numpy as np

from tools.data.records import Product, Task, TaskType
from tools.registry import TASK_TYPES
from tools.data.store import Dataset

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class KeywordClassifier:
    """Multinomial naive Bayes over request words: what wording alone says about the tool."""

    def __init__(self, tasks: list[Request] | list[Task]) -> None:
        self.class_counts = Counter(t.type for t in tasks)
        self.word_counts: dict[str, Counter] = {c: Counter() for c in TASK_TYPES}
        for t in tasks:
            self.word_counts[t.type].update(words(t.task))
        self.vocab = {w for c in self.word_counts.values() for w in c}
        self.totals = {c: sum(wc.values()) for c, wc in self.word_counts.items()}

    def predict(self, text: str) -> str:
        n = sum(self.class_counts.values()) or 1
        v = len(self.vocab) + 1

        def log_prob(c: str) -> float:
            prior = math.log((self.class_counts[c] + 1) / (n + len(TASK_TYPES)))
            return prior + sum(
                math.log((self.word_counts[c][w] + 1) / (self.totals[c] + v))
                for w in words(text) if w in self.vocab
            )

        return max(TASK_TYPES, key=log_prob)


class Request(NamedTuple):
    """One labelled request of a user: a train task or the request behind a past purchase."""

    user_id: str
    task: str
    type: TaskType


def task_requests(tasks: list[Task]) -> list[Request]:
    return [Request(t.user_id, t.task, t.type) for t in tasks]


def history_requests(ds: Dataset, users: set[str] | None = None) -> list[Request]:
    """The requests behind past interactions (generated sets; real histories have none)."""
    return [Request(uid, h.request.task, h.request.type)
            for uid, history in sorted(ds.histories.items()) if users is None or uid in users
            for h in history if h.request is not None]


class HabitModel:
    """Nearest neighbour among the same user's earlier requests.

    It compares how requests are phrased, not what they are about: words that occur in
    the catalog's titles and features are dropped, so two requests about the same kind
    of product do not look alike for that reason. Users without earlier requests (held
    out users of an imported set) and requests unlike any earlier one fall back to the
    keyword classifier.
    """

    def __init__(self, train: list[Request] | list[Task], products: dict[str, Product],
                 fallback: KeywordClassifier) -> None:
        self.product_words = {
            w for p in products.values() for w in words(" ".join([p.title, *p.features]))
        }
        self.by_user: dict[str, list[tuple[set[str], str]]] = defaultdict(list)
        for t in train:
            self.by_user[t.user_id].append((self.habit_words(t.task), t.type))
        self.fallback = fallback

    def habit_words(self, text: str) -> set[str]:
        return set(words(text)) - self.product_words

    def predict(self, user_id: str, text: str) -> str:
        """The type of the most similar earlier request, words weighted by rarity for this
        user (a greeting they always use says nothing)."""
        past = self.by_user.get(user_id, [])
        df = Counter(w for ws, _ in past for w in ws)

        def weight(w: str) -> float:
            return math.log((len(past) + 1) / (df[w] + 0.5))

        mine = self.habit_words(text)
        norm_mine = math.sqrt(sum(weight(w) ** 2 for w in mine))
        best, best_sim = None, 0.0
        for theirs, task_type in past:
            shared = sum(weight(w) ** 2 for w in mine & theirs)
            if shared > 0:
                sim = shared / (norm_mine * math.sqrt(sum(weight(w) ** 2 for w in theirs)))
                if sim > best_sim:
                    best, best_sim = task_type, sim
        return best or self.fallback.predict(text)


def tool_accuracies(ds: Dataset) -> dict[str, float | None]:
    """Tool-choice accuracy on test tasks of the keyword and habit models.

    The keyword model learns from every labelled request (train tasks and history
    requests), so it sees as much as the habit model, only not per user.
    """
    held_out = set(ds.manifest.held_out_users)
    past = history_requests(ds)
    keyword = KeywordClassifier([*task_requests(ds.train), *past])
    habit = HabitModel([*task_requests(ds.train), *past], ds.products, keyword)
    tasks_only = HabitModel(ds.train, ds.products, keyword)
    heldout = HabitModel(history_requests(ds, held_out), ds.products, keyword)
    trained_users = {t.user_id for t in ds.train}
    rows = [(t, keyword.predict(t.task) == t.type, habit.predict(t.user_id, t.task) == t.type)
            for t in ds.test]
    seen = [r for r in rows if r[0].user_id in trained_users]
    return {
        "keyword_tool_acc": _mean([k for _, k, _ in rows]),
        "habit_tool_acc": _mean([h for _, _, h in seen]),
        "habit_tool_acc_tasks_only": _mean([tasks_only.predict(t.user_id, t.task) == t.type
                                            for t, _, _ in seen]),
        "habit_tool_acc_heldout": _mean([heldout.predict(t.user_id, t.task) == t.type
                                         for t in ds.test if t.user_id in held_out])
        if past else None,
        "habit_tool_acc_all_users": _mean([h for _, _, h in rows]),
        "keyword_tool_acc_seen_users": _mean([k for _, k, _ in seen]),
    }


def product_text(p: Product) -> str:
    """The text a product is found by: title, store, category, features, description."""
    return " ".join([p.title, p.store or "", p.main_category or "", *p.features,
                     *p.description])


class Bm25Ranker:
    """BM25 over the catalog, ranking one given product for a query."""

    def __init__(self, products: dict[str, Product]) -> None:
        self.asins = sorted(products)
        self.row = {a: i for i, a in enumerate(self.asins)}
        corpus = bm25s.tokenize([product_text(products[a]) for a in self.asins],
                                stopwords="en", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus, show_progress=False)
        self.vocab = corpus.vocab

    def scores(self, query: str) -> np.ndarray:
        tokens = bm25s.tokenize(query, stopwords="en", return_ids=False, show_progress=False)[0]
        ids = [self.vocab[t] for t in tokens if t in self.vocab]
        if not ids:
            return np.zeros(len(self.asins), dtype=np.float32)
        return self.retriever.get_scores(ids)

    def rank(self, query: str, asin: str) -> float:
        """0-based rank of `asin`; ties with other products count half (expected rank)."""
        scores = self.scores(query)
        mine = scores[self.row[asin]]
        ties = int(np.sum(scores == mine)) - 1
        return float(np.sum(scores > mine)) + ties / 2


def bm25_ranks(ds: Dataset) -> dict[str, float]:
    """Mean target rank over search tasks that have a gold query, bare vs preference-aware."""
    searches = [t for t in ds.tasks if t.type == "search" and t.gold_call is not None
                and t.target.product_info.parent_asin in ds.products]
    if not searches:
        return {"bm25_target_rank_bare": None, "bm25_target_rank_pref": None}
    ranker = Bm25Ranker(ds.products)
    bare = [ranker.rank(t.task, t.target.product_info.parent_asin) for t in searches]
    pref = [ranker.rank(str(t.gold_call.arguments.get("query", "")),
                        t.target.product_info.parent_asin) for t in searches]
    return {"bm25_target_rank_bare": _mean(bare), "bm25_target_rank_pref": _mean(pref),
            "bm25_search_tasks": len(searches)}


def dataset_stats(ds: Dataset) -> dict:
    """Counts plus the tool-choice and retrieval numbers for a loaded data set."""
    counts = {
        "products": len(ds.products),
        "categories": len({p.main_category for p in ds.products.values()}),
        "users": len(ds.profiles),
        "held_out_users": len(ds.manifest.held_out_users),
        "interactions": sum(len(h) for h in ds.histories.values()),
        "train_tasks": len(ds.train),
        "test_tasks": len(ds.test),
        "history_requests": sum(h.request is not None for hs in ds.histories.values()
                                for h in hs),
        "task_types": dict(sorted(Counter(t.type for t in ds.tasks).items())),
    }
    out: dict = {"counts": counts}
    if ds.train and ds.test:
        out.update(tool_accuracies(ds))
    out.update(bm25_ranks(ds))
    return out


def _mean(values: list) -> float | None:
    """The mean, or None (JSON null) when there is nothing to average."""
    return float(sum(values) / len(values)) if values else None
