"""Domain robustness: per model, each domain task's score beside its general-domain score.

A domain task names its general-domain reference in `TaskSpec.general`: the full task for the XQuAD-R / MLQA-R
topic splits, the TICO-19 Wikipedia split for the other TICO-19 sub-domains and for NTREX-128 (same languages,
same sentence-translation form, encyclopedic text), all of Mintaka for its categories, all of EXAMS for its
subjects. Per (model, domain task): `drop` = general - domain (positive = worse in the domain). Per (model,
general task): the `worst_domain` (lowest score) and the `spread` (highest - lowest domain score).

Several seeds of one training configuration (`xbench.analysis.seeds.labels`: the same card `config` but for the seed)
form one row: scores are means over seeds, `*_std` their sample standard deviations (NaN for one seed).
Caveat: a split's pool is smaller than its general task's, which alone makes it easier, so a drop mixes domain
shift with pool size; compare drops across models rather than reading one in isolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from xbench.analysis.seeds import labels
from xbench.errors import XbenchError
from xbench.results.schema import ResultFile
from xbench.scoring.aggregate import macro

COLUMNS = ["model", "seeds", "general", "general_score", "general_std", "task", "domain", "score", "score_std",
           "drop", "drop_std", "worst_domain", "spread"]


def _scores(results: Sequence[ResultFile], setting: str, metric: str) -> pd.DataFrame:
    """One row per results file: model (configuration), seed, run (model name), task, general, domain, score (macro
    over query languages)."""
    rows = []
    for r, (label, seed) in zip(results, labels(results)):
        score = macro(r.summary, setting, metric)
        rows.append({"model": label, "seed": seed, "run": r.model.name, "task": r.task.name,
                     "general": r.task.general, "domain": r.task.domain or r.task.name, "score": score})
    table = pd.DataFrame(rows, columns=["model", "seed", "run", "task", "general", "domain", "score"])
    twice = table[table.duplicated(["model", "seed", "task"])]
    if not twice.empty:
        first = twice.iloc[0]
        raise XbenchError(f"two results files hold model {first['model']!r} (seed {first['seed'] or '-'}) on task "
                          f"{first['task']!r} (fields `model.name` / `model.card.seed`); pass each run once.")
    return table


def paired_scores(results: Sequence[ResultFile], setting: str = "multi", metric: str = "map") -> pd.DataFrame:
    """Per (run, domain task with a `general` reference): its score beside the same run's general-domain score and
    the drop (general - domain). Columns: model (configuration), seed, run, task, general, domain, score,
    general_score, drop; empty without domain tasks."""
    scores = _scores(results, setting, metric)
    domains = scores.dropna(subset=["general"])
    general = scores[["model", "seed", "task", "score"]].rename(columns={"task": "general", "score": "general_score"})
    paired = domains.merge(general, on=["model", "seed", "general"], how="left")
    paired["drop"] = paired["general_score"] - paired["score"]
    return paired


def robustness_table(results: Sequence[ResultFile], setting: str = "multi", metric: str = "map") -> pd.DataFrame:
    """Per (model, domain task with a `general` reference): general and domain scores, drop, worst domain and
    spread of its general group; means and standard deviations over seeds. Columns: COLUMNS."""
    paired = paired_scores(results, setting, metric)
    if paired.empty:
        return pd.DataFrame(columns=COLUMNS)
    per_seed = paired.groupby(["model", "general", "task", "domain"], sort=True)
    table = per_seed.agg(seeds=("seed", "nunique"), general_score=("general_score", "mean"),
                         general_std=("general_score", "std"), score=("score", "mean"), score_std=("score", "std"),
                         drop=("drop", "mean"), drop_std=("drop", "std")).reset_index()
    group = table.groupby(["model", "general"])["score"]
    table["spread"] = group.transform("max") - group.transform("min")
    worst = table.dropna(subset=["score"]).sort_values(["score", "task"]).drop_duplicates(["model", "general"])
    worst = worst[["model", "general", "domain"]]
    table = table.merge(worst.rename(columns={"domain": "worst_domain"}), on=["model", "general"], how="left")
    return table[COLUMNS]
