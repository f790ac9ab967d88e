"""The simulated user: answers from hidden preferences, deterministic, ends when it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.data import generate_dataset, load_dataset
from tools.simulated_user import STOP, SimulatedUser

QUESTIONS = ["Which brand do you prefer?", "What's your budget?", "Anything specific?",
             "Should I search or recommend?", "Could you clarify what you are looking for?",
             "hmm", "and?"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory):
    return load_dataset(generate_dataset(tmp_path_factory.mktemp("sim"), users=8, seed=2))


def first(ds, kind: str):
    return next(t for t in ds.test if t.type == kind)


def conversation(ds, task, seed: int) -> list[str]:
    user = SimulatedUser(ds.hidden[task.user_id], task, seed=seed, products=ds.products)
    return [user.opening(), *(user.respond(q).text for q in QUESTIONS)]


def test_same_seed_same_replies(ds) -> None:
    for kind in ("search", "recommend", "review"):
        task = first(ds, kind)
        assert conversation(ds, task, 3) == conversation(ds, task, 3)
    replies = {tuple(conversation(ds, first(ds, "search"), s)) for s in range(6)}
    assert len(replies) > 1  # the seed does vary the wording


def test_answers_come_from_hidden_preferences(ds) -> None:
    task = first(ds, "search")
    prefs = ds.hidden[task.user_id]
    user = SimulatedUser(prefs, task, products=ds.products)
    target = task.target.product_info
    assert target.store in user.respond("Which brand do you like?").text
    assert target.details["Item Type Name"] in user.respond("What kind of item?").text
    liked = prefs.liked_features[target.main_category]
    assert all(f in user.respond("Any features you need?").text for f in liked)
    assert "find a specific item" in user.respond("Do you want me to search or recommend?").text \
        or "Look it up" in user.respond("search or recommend?").text


def test_ends_when_target_is_shown(ds) -> None:
    task = first(ds, "recommend")
    user = SimulatedUser(ds.hidden[task.user_id], task, products=ds.products)
    other = next(a for a in ds.products if a != task.target.product_info.parent_asin)
    reply = user.observe("get_recommendations_by_history", [other])
    assert not reply.done and not user.satisfied
    reply = user.observe("get_recommendations_by_history",
                         [other, task.target.product_info.parent_asin])
    assert reply.done and user.satisfied
    assert user.respond("anything else?").text == STOP


def test_review_task_ends_when_review_is_written(ds) -> None:
    task = first(ds, "review")
    user = SimulatedUser(ds.hidden[task.user_id], task, products=ds.products)
    assert not user.respond(f"Is it {task.target.product_info.parent_asin}?").done
    assert "stars" in user.respond("How would you rate it?").text
    assert not user.observe("search_product_by_query", ["B0AAAAAAAA"]).done
    assert user.observe("add_product_review", "Loved it.").done and user.satisfied


def test_step_limit_ends_the_episode(ds) -> None:
    task = first(ds, "search")
    user = SimulatedUser(ds.hidden[task.user_id], task, max_steps=3)
    replies = [user.respond("hmm") for _ in range(3)]
    assert [r.done for r in replies] == [False, False, True]
    assert not user.satisfied and user.respond("hello?").text == STOP


def test_rejects_a_task_of_another_user(ds) -> None:
    task = first(ds, "search")
    other = next(uid for uid in ds.hidden if uid != task.user_id)
    with pytest.raises(ValueError, match="belongs to"):
        SimulatedUser(ds.hidden[other], task)
