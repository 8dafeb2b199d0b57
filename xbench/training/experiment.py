"""`xbench experiment CONFIG.yaml`: train every combination of a grid, evaluate each model, skip what is done.

The grid is sampling {mono, cross, hybrid} x alpha (hybrid only) x domain mixes x seeds; every other training
setting is shared (`train:`). Each run trains into OUT/models/<run>/ (resumable; a finished model is reused)
and is evaluated with `xbench.evaluation.run.run_task` into OUT/results/<run>/<task>.json (an up-to-date result is
kept; a run whose every result is up to date is not trained again, even when its model folder is gone), so
`xbench report OUT/results` shows the whole grid. OUT/experiment.json lists every run, its configuration and
the outcome of each evaluation. The frozen embeddings and lowest layers that every run shares with the base are
encoded once per text for all of the grid's evaluations (xbench/models/prefix.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xbench.analysis.seeds import training
from xbench.errors import XbenchError
from xbench.evaluation.run import current, run_task
from xbench.io import write_atomic
from xbench.models.prefix import PrefixStore, share_prefix
from xbench.models.registry import load_trained, resolve
from xbench.results.store import result_path
from xbench.tasks.registry import discover, select, with_languages
from xbench.tasks.spec import SETTINGS, Setting
from xbench.training.config import (
    SAMPLING_ALPHA,
    Sampling,
    TrainConfig,
    idle_domain_sources,
    make_config,
    parse_domain,
)
from xbench.training.train import CARD_FILE, train

GRID_FIELDS = ("sampling", "alpha", "domain", "seed")


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sampling: list[Sampling] = Field(default_factory=lambda: list[Sampling](["mono", "cross", "hybrid"]), min_length=1)
    alpha: list[float] = Field(default_factory=lambda: [0.5], min_length=1, description="hybrid runs only")
    domain: list[list[str]] = Field(default_factory=lambda: [list[str]()], min_length=1,
                                    description="domain mixes, each a list of SOURCE[:SHARE]; [] = general only")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(min_length=1)
    settings: list[Setting] = Field(default_factory=lambda: list(SETTINGS), min_length=1)
    languages: list[str] | None = Field(None, min_length=1, description="evaluate on these languages of each task "
                                                                        "only (a cheaper grid); default all")
    include_base: bool = Field(True, description="also evaluate the untrained base model, as the reference row")
    batch_size: int = Field(64, ge=1)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig settings shared by every run")
    grid: Grid = Field(default_factory=Grid)
    eval: Evaluation

    @field_validator("train")
    @classmethod
    def _no_grid_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        clash = [k for k in v if k in GRID_FIELDS]
        if clash:
            raise ValueError(f"{clash[0]!r} is set by the grid; move it to `grid:`")
        return v


@dataclass(frozen=True)
class Run:
    name: str
    config: TrainConfig


def load_experiment(path: Path) -> Experiment:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise XbenchError(f"{path}: cannot read the experiment file ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise XbenchError(f"{path}: not valid YAML ({exc}).") from None
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise XbenchError(f"{path}: field `{where}`: {first['msg']}. See experiments/paper-cpu.yaml.") from None


def run_name(config: TrainConfig) -> str:
    """A readable, unique folder name: sampling, alpha (hybrid), domain mix and seed."""
    parts = [config.sampling + (f"-a{config.effective_alpha:g}" if config.sampling == "hybrid" else "")]
    parts.append("-".join(f"{s}_{share:g}" for s, share in config.domain.items()) or "general")
    return "-".join([*parts, f"s{config.seed}"])


def expand(experiment: Experiment, where: str) -> tuple[list[Run], list[str]]:
    """Every grid combination as a validated TrainConfig (mono and cross take no alpha, so they run once), and
    the combinations skipped because a domain source could never be drawn (say, a translation source in
    monolingual batches). Seeds vary slowest, so a grid cut short holds every configuration for its first seeds."""
    runs: dict[str, Run] = {}
    skipped: dict[str, None] = {}  # ordered, once per combination (mono and cross repeat over alpha)
    grid = experiment.grid
    for seed, sampling, alpha, mix in itertools.product(grid.seeds, grid.sampling, grid.alpha, grid.domain):
        alpha = alpha if sampling == "hybrid" else SAMPLING_ALPHA[sampling]
        domain = parse_domain(mix)
        idle = idle_domain_sources(alpha, domain)
        if idle:
            skipped[f"{sampling} x {','.join(mix)} x seed {seed}: {sampling} batches can draw no pair from "
                    f"{', '.join(idle)}"] = None
            continue
        config = make_config(where, **experiment.train, sampling=sampling, seed=seed, domain=domain, alpha=alpha)
        runs.setdefault(run_name(config), Run(run_name(config), config))
    return list(runs.values()), list(skipped)


def evaluated(out: Path, run: Run, tasks: list[Any], shas: dict[str, str], settings: list[Setting]) -> bool:
    """Every task already holds results of exactly this run's configuration on the same task spec and data
    (`shas`: each available task's data sha256): the run needs neither training nor its weights (which may have been
    deleted to save disk, or never copied along with the results from the machine that trained them)."""
    config = run.config.model_dump(mode="json")
    for task in tasks:
        if task.name not in shas:
            return False
        wanted = [s for s in settings if s in task.spec.settings]
        old = current(result_path(out / "results", run.name, task.name), task, shas[task.name], wanted)
        if old is None or training(old).get("config") != config:
            return False
    return True


def run_experiment(path: Path, out: Path, *, device: str, cache_root: Path, tasks_dirs: tuple[Path, ...] = (),
                   threads: int | None = None, echo: Any = print) -> list[dict[str, Any]]:
    """Train and evaluate every run of the grid; returns (and writes to OUT/experiment.json) one row per run."""
    experiment = load_experiment(path)
    runs, skipped = expand(experiment, str(path))
    if threads:  # for the evaluations too, not only the trainings
        import torch  # lazy: heavy; only when a model runs

        torch.set_num_threads(threads)
    tasks = select(discover(tasks_dirs), ",".join(experiment.eval.tasks))
    try:
        tasks = [with_languages(t, experiment.eval.languages) for t in tasks]
    except XbenchError as exc:
        raise XbenchError(f"{path}: field `eval.languages`: {exc}") from None
    if experiment.eval.include_base and runs[0].config.base == "tiny":
        raise XbenchError(f"{path}: field `eval.include_base`: the tiny base is built inside each run and cannot be "
                          "evaluated on its own; set it to false.")
    echo(f"{experiment.name}: {len(runs)} trainings x {len(tasks)} tasks -> {out}")
    for reason in skipped:
        echo(f"  skipped {reason}")
    rows: list[dict[str, Any]] = []

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        write_atomic(out / "experiment.json", json.dumps({"experiment": experiment.model_dump(mode="json"),
                                                          "skipped": skipped, "runs": rows},
                                                         indent=2, ensure_ascii=False) + "\n")

    def evaluate(name: str, retriever: Any, row: dict[str, Any]) -> None:
        for task in tasks:
            command = shlex.join(["xbench", "experiment", str(path), "--out", str(out)]) + f"  # run {name}"
            outcome = run_task(retriever, task, settings=experiment.eval.settings, output=out / "results",
                               command=command, device=device)
            row["tasks"][task.name] = outcome.status + (f": {outcome.message}" if outcome.message else "")
            echo(f"  {name} / {task.name}: {outcome.status}" + (f" ({outcome.message})" if outcome.message else ""))

    # every model keeps the base's frozen embeddings + lowest layers: their hidden states are encoded once
    frozen, prefixes = runs[0].config.freeze_layers, PrefixStore()

    def shared(retriever: Any) -> Any:
        model = getattr(retriever.encoder, "model", None)
        if frozen and model is not None:
            share_prefix(model, frozen, prefixes)
        return retriever

    if experiment.eval.include_base:
        base = runs[0].config.base
        row: dict[str, Any] = {"run": f"base-{Path(base).name}", "config": None, "model": base, "tasks": {}}
        retriever = resolve(base, cache_root=cache_root, device=device, batch_size=experiment.eval.batch_size)
        evaluate(row["run"], shared(retriever), row)
        record(row)
    shas = {}  # each task's data sha256, verified once for all the runs that may be done already
    for task in tasks:
        with contextlib.suppress(XbenchError):  # data not here: run_task reports the task as skipped
            shas[task.name] = task.data_sha256()
    for i, run in enumerate(runs, 1):
        echo(f"[{i}/{len(runs)}] {run.name}")
        model_dir = out / "models" / run.name
        row = {"run": run.name, "config": run.config.model_dump(mode="json"), "model": str(model_dir), "tasks": {}}
        if not (model_dir / CARD_FILE).is_file() and evaluated(out, run, tasks, shas, experiment.eval.settings):
            row["tasks"] = {task.name: "up to date" for task in tasks}
            echo(f"  {run.name}: every task evaluated already; not trained again")
            record(row)
            continue
        try:
            train(run.config, model_dir, device=device, cache_root=cache_root)
            retriever = load_trained(model_dir, run.name, cache_root=cache_root, device=device,
                                     batch_size=experiment.eval.batch_size)
            evaluate(run.name, shared(retriever), row)
        except XbenchError as exc:
            row["error"] = str(exc)
            echo(f"  {run.name}: failed: {exc}")
        except Exception as exc:  # a crash in one run must not lose the grid's other runs
            row["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            echo(f"  {run.name}: crashed: {row['error']}")
        record(row)
    return rows
