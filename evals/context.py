"""What an evaluation step gets: the open agent and the choices made for this run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.runner import BATCH


@dataclass
class EvalContext:
    """Passed explicitly to every track and experiment (no module state)."""

    agent: Any  # agent.runtime.FintsAgent
    dataset: Any  # tools.data.Dataset
    users: list[str]
    tasks: list[Any]  # tools.data.Task, the evaluated tasks
    out: Path
    suite: str = "smoke"
    batch_size: int = BATCH
    seed: int = 0
    progress: bool = True
    memory_history: int | None = None  # the agent's memory: each user's latest N past interactions (None: all)
    timing: dict[str, float] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # (track, method)
    stage_methods: tuple[str, ...] = ()  # --methods for the stages experiment (empty: its own list)
    # agent.methods.Method -> the tool the single-turn track's call named, per evaluated task
    decided: dict[Any, list[str | None]] = field(default_factory=dict)
    stages: dict[Any, list[dict]] = field(default_factory=dict)  # Method -> `stage_rows`, made once

    def stage_rows(self, method: Any, bar: Any = None) -> list[dict]:
        """Each evaluated task's decision and retrieval (`agent.stages.stage_rows`) under
        `method` with the agent's own memory, made once per run and shared by the
        experiments that need it: the tools of the single-turn track's calls when it ran
        this method (a generated call names the tool decision-only mode picks), else
        decision-only."""
        if method in self.stages:
            if bar is not None:
                bar.update(len(self.tasks))
        else:
            from agent.stages import stage_rows

            self.stages[method] = stage_rows(self.agent.decider, self.agent.tool_specs(), self.tasks,
                                             method, self.batch_size, bar, decided=self.decided.get(method))
        return self.stages[method]

    def method(self, name: str, **overrides: Any) -> Any:
        from agent.methods import parse_method

        return parse_method(name, self.agent.loaded.model_id, **overrides)

    def bar(self, total: int, desc: str) -> Any:
        """A tqdm progress bar with an ETA (silent when progress is off)."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="task", disable=not self.progress,
                    dynamic_ncols=True)
