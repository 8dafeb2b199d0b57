"""`xbench train` and `xbench experiment`: hybrid-batch fine-tuning, and whole training grids."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from xbench.cli.common import (
    EXIT_USER_ERROR,
    CommaList,
    cache_option,
    check_writable,
    device_option,
    echo_json,
    json_option,
    status,
    tasks_dir_option,
    threads_option,
    user_errors,
)
from xbench.paths import default_cache_root
from xbench.training.config import TrainConfig, make_config, parse_domain
from xbench.training.experiment import load_experiment, run_experiment
from xbench.training.train import CARD_FILE, train


def _default(field: str) -> Any:
    return TrainConfig.model_fields[field].get_default(call_default_factory=True)


@click.command("train")
@click.option("--base", default=_default("base"), show_default=True,
              help="me5-small | tiny (built here, for tests) | a local sentence-transformers/transformers folder.")
@click.option("--sampling", type=click.Choice(["mono", "cross", "hybrid"]), default=_default("sampling"),
              show_default=True, help="mono: alpha 1 (X-X), cross: alpha 0 (X-Y), hybrid: alpha (default 0.5).")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None, help="Share of monolingual batches (hybrid).")
@click.option("--general-data", type=CommaList(metavar="SOURCE,SOURCE..."), default=",".join(_default("general")),
              show_default=True, help="General sources (tatoeba, arcd, tico19, ntrex128, mintaka, exams).")
@click.option("--domain-data", multiple=True, metavar="SOURCE[:SHARE]",
              help="Domain source and its share of every batch (repeatable; no share: 0.5 split evenly).")
@click.option("--languages", type=CommaList(metavar="LANG,LANG..."), default="",
              help="Only pairs whose two languages are in this comma-separated list.")
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=_default("steps"), show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=_default("batch_size"), show_default=True)
@click.option("--mini-batch-size", type=click.IntRange(min=1), default=_default("mini_batch_size"),
              show_default=True, help="Batches above this use the cached (gradient-caching) loss.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=_default("lr"), show_default=True)
@click.option("--max-seq-length", type=click.IntRange(min=8), default=_default("max_seq_length"),
              show_default=True, help="Token limit while training (evaluation keeps the base's).")
@click.option("--freeze-embeddings/--no-freeze-embeddings", default=_default("freeze_embeddings"),
              show_default=True, help="Freeze the token embeddings (most of a multilingual model's weights).")
@click.option("--freeze-layers", type=click.IntRange(min=0), default=_default("freeze_layers"),
              show_default=True, help="Also freeze the embeddings block and the lowest N transformer layers.")
@click.option("--save-steps", type=click.IntRange(min=1), default=_default("save_steps"), show_default=True,
              help="Checkpoint interval; an interrupted run resumes from the last checkpoint.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the trained model.")
@device_option
@threads_option
@cache_option
@user_errors
def train_cmd(base: str, sampling: str, alpha: float | None, general_data: tuple[str, ...],
              domain_data: tuple[str, ...], languages: tuple[str, ...], seed: int, steps: int, batch_size: int,
              mini_batch_size: int, lr: float, max_seq_length: int, freeze_embeddings: bool, freeze_layers: int,
              save_steps: int, out: Path, device: str, threads: int | None, cache_dir: Path | None) -> None:
    """Fine-tune an encoder with hybrid batches; writes OUT with its card (xbench_card.json)."""
    config = make_config(
        "xbench train", base=base, sampling=sampling, alpha=alpha, seed=seed, steps=steps, batch_size=batch_size,
        general=list(general_data), domain=parse_domain(domain_data), languages=list(languages) or None,
        mini_batch_size=mini_batch_size, lr=lr, max_seq_length=max_seq_length, freeze_embeddings=freeze_embeddings,
        freeze_layers=freeze_layers, save_steps=save_steps,
    )
    path = train(config, out, device=device, cache_root=cache_dir or default_cache_root(), threads=threads)
    click.echo(f"trained model: {path} (card: {path / CARD_FILE}); evaluate it with "
               f"`xbench run --model {path} --tasks all`")


@click.command("experiment")
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for models and results (default experiments/runs/<name>).")
@device_option
@threads_option
@cache_option
@tasks_dir_option
@json_option
@user_errors
def experiment_cmd(config: Path, out: Path | None, device: str, threads: int | None, cache_dir: Path | None,
                   tasks_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Train and evaluate every run of an experiment grid, skipping what is done.

    Then `xbench report OUT/results` shows the grid; --json prints the rows of OUT/experiment.json at the end."""
    out = out or Path("experiments") / "runs" / load_experiment(config).name
    check_writable(out)
    rows = run_experiment(config, out, device=device, cache_root=cache_dir or default_cache_root(),
                          tasks_dirs=tasks_dirs, threads=threads, echo=status)
    failed = [r["run"] for r in rows if "error" in r or any(s.startswith("failed") for s in r["tasks"].values())]
    if as_json:
        echo_json(rows)
    else:
        click.echo(f"{len(rows) - len(failed)}/{len(rows)} runs complete; table: xbench report {out / 'results'}"
                   + (f"; incomplete: {', '.join(failed)} (see {out / 'experiment.json'})" if failed else ""))
    if failed:
        sys.exit(EXIT_USER_ERROR)
