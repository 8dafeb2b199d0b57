"""Seeded recipes of the built-in trained models (`xbench run --model me5-small-hybrid|-mono|-cross`).

All three fine-tune me5-small on the general training data only (Tatoeba cross-lingual pairs, ARCD Arabic QA
pairs), which ship with xbench and belong to no evaluation task, so every task, the domain ones included, stays
zero-shot; they differ only in the batch mix: hybrid (alpha 0.5, the paper's), mono (alpha 1: Arabic ARCD
batches, the only general monolingual QA data offline) and cross (alpha 0: Tatoeba). The steps, frozen layers and
batch size are sized for a CPU (see experiments/paper-cpu.yaml for the measurements); everything else is the
paper's setting. Each model is trained once, on first use, into the model cache; importing this module registers
the three names in the model registry.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from xbench.models.base import Retriever
from xbench.models.builtins import ME5_FACTS, ME5_LANGUAGES
from xbench.models.registry import LoadOptions, ModelEntry, load_folder, register
from xbench.training.config import TrainConfig

RECIPE: dict[str, Any] = {"base": "me5-small", "general": ["tatoeba", "arcd"], "seed": 0, "steps": 300,
                          "batch_size": 32, "freeze_embeddings": True, "freeze_layers": 6, "max_seq_length": 64}
RECIPES = {f"me5-small-{s}": TrainConfig(sampling=s, **RECIPE) for s in ("hybrid", "mono", "cross")}


def build_trained(name: str, options: LoadOptions) -> Path:
    """The trained built-in's folder, training it first (with a progress bar) when it is not cached yet."""
    from xbench.training.train import read_card, train  # lazy: registering the names must not import torch

    dest = options.cache_root / "models" / name
    config = RECIPES[name]
    if read_card(dest) is None:
        print(f"Training {name} once from me5-small ({config.sampling} batches, {config.steps} steps of "
              f"{config.batch_size}; about 7 minutes on 2 free CPU cores) into {dest} ...", flush=True)
    return train(config, dest, device=options.device, cache_root=options.cache_root)


def _load(name: str, options: LoadOptions) -> Retriever:
    return load_folder(build_trained(name, options), name, "trained", options, **ME5_FACTS)  # same architecture


for _name, _config in RECIPES.items():
    register(ModelEntry(_name, f"me5-small fine-tuned with {_config.sampling} batches by the built-in recipe "
                               "(xbench train; Tatoeba + ARCD), trained on first use", ME5_LANGUAGES,
                        partial(_load, _name), build=partial(build_trained, _name)))
