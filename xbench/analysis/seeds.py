"""Results of one training configuration trained with several seeds: which files belong together, and their
mean and sample standard deviation per task and metric.

A model trained by xbench carries its training card in results (`model.card["training"]`), with the full
training `config`, seed included; two results belong to one configuration when their configs are equal once the
seed is removed. A results file without a config (an untrained model, a submission) is a configuration of its
own, labelled by its model name. The label of a configuration is its model name without the `-s<seed>` suffix
that `xbench experiment` appends; two different configurations that would share a label keep them apart with a
short hash of the config.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pandas as pd

from xbench.results.schema import ResultFile
from xbench.scoring.aggregate import RD, macro

# What the hybrid-batch comparison reads: mAP in every setting and multi's rank distance.
DEFAULT_METRICS = (("mono", "map"), ("cross", "map"), ("multi", "map"), ("multi", RD))


def training(result: ResultFile) -> dict:
    """The training card of a model xbench trained ({} for any other model)."""
    return result.model.card.get("training") or {}


def _config_id(result: ResultFile) -> str | None:
    config = training(result).get("config")
    if config is None:
        return None
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k != "seed"}
    return json.dumps(config, sort_keys=True)


def labels(results: Sequence[ResultFile]) -> list[tuple[str, str]]:
    """Per result: (configuration label, seed as text, "" when there is none), in the order given."""
    seeds = [training(result).get("seed") for result in results]
    ids = [_config_id(r) for r in results]
    names = [r.model.name if cid is None else r.model.name.removesuffix(f"-s{seed}")
             for r, cid, seed in zip(results, ids, seeds)]
    owners: dict[str, set[str | None]] = {}
    for name, cid in zip(names, ids):
        owners.setdefault(name, set()).add(cid)
    out = []
    for name, cid, seed in zip(names, ids, seeds):
        if len(owners[name]) > 1 and cid is not None:
            name = f"{name} [{hashlib.sha256(cid.encode()).hexdigest()[:6]}]"
        out.append((name, "" if seed is None or cid is None else str(seed)))
    return out


def seed_table(results: Sequence[ResultFile], tasks: Sequence[str] | None = None,
               metrics: Sequence[tuple[str, str]] = DEFAULT_METRICS) -> pd.DataFrame:
    """Per (configuration, task): number of seeds, then per metric its mean over seeds and sample std (ddof 1;
    NaN for one seed), then training seconds (mean, std; NaN for an untrained model). Metrics are macro
    averages over query languages, as on the leaderboard; a setting a result did not run is NaN."""
    rows = []
    for result, (label, seed) in zip(results, labels(results)):
        if tasks is not None and result.task.name not in tasks:
            continue
        row = {"model": label, "task": result.task.name, "seed": seed,
               "train_seconds": training(result).get("train_seconds", float("nan"))}
        for setting, metric in metrics:
            row[f"{setting} {metric}"] = macro(result.summary, setting, metric)
        rows.append(row)
    values = [f"{s} {m}" for s, m in metrics] + ["train_seconds"]
    frame = pd.DataFrame(rows, columns=["model", "task", "seed", *values])
    grouped = frame.groupby(["model", "task"], sort=False)
    table = grouped[values].agg(["mean", "std"])
    table.columns = [name if stat == "mean" else f"{name} std" for name, stat in table.columns]
    table.insert(0, "seeds", grouped["seed"].size())
    return table.reset_index()


def with_std(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The table with each `X` / `X std` pair shown as one `mean ± std` text column (mean alone for one seed)."""
    out = table[[c for c in table.columns if not c.endswith(" std")]].astype(object)
    for column in out.columns:
        if f"{column} std" not in table.columns:
            continue
        fmt = f"{{:.{0 if column.endswith(RD) or column == 'train_seconds' else digits}f}}"
        out[column] = [("" if pd.isna(m) else fmt.format(m)) + ("" if pd.isna(s) else f" ± {fmt.format(s)}")
                       for m, s in zip(table[column], table[f"{column} std"])]
    return out
