"""How many sentences in the user's voice a review should end with (`voice` in
agent/defaults.json), chosen on users that are NOT held out, without the model.

    .venv/bin/python scripts/voice_count.py --data data/seed0 --out out/voice_count.json

Every review task of the data set's non-held-out users gets a model-free review that
names the request's subject ("I bought this <the request's catalog words> a month ago
and it works well.", the prompt's own example), then the agent's own step appends up to
n of the user's voice sentences (`Decider.personal_terms`, `PromptMemory.voice`, memory
of each user's history and train tasks). Printed and written: R. Acc (MiniLM similarity
to the user's real review) per n.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from langchain_core.messages import AIMessage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COUNTS = (0, 1, 2, 3, 4, 5, 6, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data set directory (fints shop generate)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args()

    from agent.decide import Decider, Row
    from agent.methods import parse_method
    from agent.prompt_memory import PromptMemory
    from agent.runtime import intent_keys
    from common.embedding import load_embedder
    from tools.data.store import load_dataset
    from tools.registry import TOOL_FOR_TYPE
    from tools.scoring import review_similarity

    dataset = load_dataset(args.data)
    held = set(dataset.manifest.held_out_users)
    tasks = [t for t in dataset.test if t.type == "review" and t.user_id not in held]
    embedder = load_embedder()
    keys = intent_keys(dataset)
    memory = PromptMemory.from_dataset(dataset, embedder, users=sorted({t.user_id for t in tasks}), keys=keys)
    decider = Decider(None, None, memory)
    methods = {n: parse_method("prompt-k1", voice=n) for n in COUNTS}  # read the defaults once
    scores: dict[int, list[float]] = {n: [] for n in COUNTS}
    for task in tasks:
        review = f"I bought this {keys.subject(task.task).lower()} a month ago and it works well."
        for n, method in methods.items():
            call = {"name": TOOL_FOR_TYPE["review"], "args": {"review": review}, "id": "c"}
            made = decider.personal_terms(method, Row(task.user_id, task.task),
                                          AIMessage(content="", tool_calls=[call]))
            scores[n].append(review_similarity(made.tool_calls[0]["args"]["review"],
                                               task.target.review.text, embedder))
    result = {"data": args.data, "tasks": len(tasks),
              "r_acc_by_count": {str(n): round(sum(v) / len(v), 4) for n, v in scores.items()}}
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
