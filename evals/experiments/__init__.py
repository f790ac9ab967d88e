"""The full suite's experiments; each takes an `EvalContext` and returns its report
section (`note`, `methods` and/or `tables`, `plot`), writing its plot under the output.

The main table (held-out users, every method) is the tracks themselves; see
`evals.evaluate.run_track`.
"""

from evals.experiments.arguments import run_arguments
from evals.experiments.clusters import run_clusters
from evals.experiments.online import run_online
from evals.experiments.sparse import run_sparse
from evals.experiments.stages import run_stages
from evals.experiments.sweep import run_calibration, run_sweep

EXPERIMENTS = {
    "sparse": run_sparse,
    "clusters": run_clusters,
    "online": run_online,
    "sweep": run_sweep,
    "calibration": run_calibration,
    "stages": run_stages,
    "arguments": run_arguments,
}

# Experiments that read nothing of the evaluated users' store (their own inputs only), so
# running them alone builds no memory.
WITHOUT_MEMORY = frozenset({"arguments"})

__all__ = ["EXPERIMENTS", "WITHOUT_MEMORY", "run_arguments", "run_calibration", "run_clusters", "run_online", "run_sparse", "run_stages", "run_sweep"]
