"""`fints demo`: the same implicit request from two users with opposite habits, answered
unsteered and steered side by side, and the memory growing after each request.

Everything it needs is made on the spot when missing (data set, shop, memory), so it
runs on a fresh machine with nothing but the installed packages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tools.registry import TOOL_FOR_TYPE

DEMO_HISTORY = 20  # history items per demo user turned into memory entries
STAGE_METHODS = ("zero-shot", "nearest-call", "prompt-k5")  # beside the agent's own method


def pick_users(dataset: Any) -> tuple[str, str, str]:
    """Two users who phrase requests the same way but mean different tools by it, and a
    request of the first one: (user who means recommend, user who means search, request)."""
    hidden = dataset.hidden
    single = {u: h for u, h in hidden.items() if len(h.modes) == 1 and not h.sparse and not h.drift_timestamp}
    for user_a, prefs_a in sorted(single.items()):
        family = prefs_a.modes[0].asking["recommend"]
        for user_b, prefs_b in sorted(single.items()):
            if user_b != user_a and prefs_b.modes[0].asking["search"] == family:
                request = next((t.task for t in dataset.test if t.user_id == user_a and t.type == "recommend"), None)
                if request:
                    return user_a, user_b, request
    raise RuntimeError("the data set has no two users with opposite habits; generate more users")


def ensure_data(data: Path, users: int) -> None:
    from tools.data import generate_dataset

    if (data / "products.json").is_file():
        return
    print(f"Generating the demo data set ({users} users) in {data} ...")
    generate_dataset(data, users=users, seed=0)


def ensure_memory(agent: Any, users: list[str]) -> None:
    missing = [u for u in users if agent.store.count(u) == 0]
    if not missing:
        return
    print(f"Building steering memory for {len(missing)} users (once) ...")
    agent.build_memory(missing, max_history=DEMO_HISTORY)


def run_demo(data: Path, *, store: str, model: str | None = None, users: int = 200) -> int:
    from agent.describe import describe_steering
    from agent.methods import parse_method
    from agent.runtime import AgentConfig, FintsAgent
    from tools.data import load_dataset

    ensure_data(data, users)
    dataset = load_dataset(data)
    user_a, user_b, request = pick_users(dataset)
    with FintsAgent.open(AgentConfig(data_dir=data, model=model, store=store)) as agent:
        ensure_memory(agent, [user_a, user_b])
        zero_shot = parse_method("zero-shot")
        steered = agent.method
        print(f"\nThe same request from two users: {request!r}")
        print(f"  {user_a} habitually means: recommendations from their history")
        print(f"  {user_b} habitually means: a search\n")
        rows = []
        for user, wanted in tqdm([(user_a, "recommend"), (user_b, "search")], desc="deciding"):
            plain = agent.decide(user, request, method=zero_shot)
            steer = agent.decide(user, request, method=steered)
            rows.append((user, wanted, plain, steer))
        for user, wanted, plain, steer in rows:
            print(f"{user}  (wants {wanted}: {TOOL_FOR_TYPE[wanted]})")
            print(f"  unsteered: {_call_text(plain.call)}")
            print(f"  steered:   {_call_text(steer.call)}   [{steered.name}]")
            print(f"             steering: {describe_steering(steer.steering)}")
        print("\nCompleted requests add entries to memory (the memory node, in the background):")
        for user in (user_a, user_b):
            before = agent.store.count(user)
            result = agent.run(user, request)
            agent.flush_memory(timeout=300)
            after = agent.store.count(user)
            print(f"  {user}: ran {_call_text(result.call)} -> {len(result.asins)} products; "
                  f"memory entries {before} -> {after}")
        correct = sum(s.call is not None and s.call["name"] == TOOL_FOR_TYPE[w] for _, w, _, s in rows)
        print(f"\nSteered decisions matching the user's habit: {correct}/2")
        show_stages(agent, dataset, [user_a, user_b], [*STAGE_METHODS, steered.name])
    sys.stdout.flush()
    return 0


def show_stages(agent: Any, dataset: Any, users: list[str], methods: list[str]) -> None:
    """Each user's own test tasks, decision-only, per method: how often retrieval found
    the right tool, how often the model did what was retrieved, and how often it was
    right (where personalization is won or lost; `fints eval --experiments stages` runs
    the same over every held-out task)."""
    from agent.methods import parse_method
    from agent.stages import stage_counts, stage_rows

    tasks = {user: [t for t in dataset.test if t.user_id == user] for user in users}
    print("\nStages on each user's own test tasks (decision-only): retrieval = the retrieved "
          "entries vote for the right tool; obeyed = the decision follows that vote")
    print(f"  {'user':<10} {'method':<24} {'retrieval':>10} {'obeyed':>8} {'F. Acc':>8}")
    with tqdm(total=sum(map(len, tasks.values())) * len(methods), desc="stages", leave=False) as bar:
        found = {(user, name): stage_counts(stage_rows(agent.decider, agent.tool_specs(), tasks[user],
                                                       parse_method(name, agent.loaded.model_id), bar=bar))
                 for user in users for name in methods}
    for user in users:
        for name in methods:
            c = found[user, name]
            retrieval = f"{c['retrieved']}/{c['n']}" if name != "zero-shot" else "-"
            obeyed = f"{c['obeyed']}/{c['with_retrieval']}" if name != "zero-shot" else "-"
            print(f"  {user:<10} {name:<24} {retrieval:>10} {obeyed:>8} {c['right']:>5}/{c['n']}")


def _call_text(call: dict | None) -> str:
    if call is None:
        return "(no valid call)"
    args = json.dumps(call["args"], ensure_ascii=False)
    return f"{call['name']}({args[:80] + ('...' if len(args) > 80 else '')})"
