"""Seeded recipes of the built-in trained models (`xbench run --model me5-small-hybrid|-mono|-cross`).

All three fine-tune me5-small on the general training data only (Tatoeba cross-lingual pairs, ARCD Arabic QA
pairs), which ship with xbench and belong to no evaluation task, so every task, the domain ones included, stays
zero-shot; they differ only in the batch mix: hybrid (alpha 0.5, the paper's), mono (alpha 1: Arabic ARCD
batches, the only general monolingual QA data offline) and cross (alpha 0: Tatoeba). The steps, frozen layers and batch size are sized
for a CPU (see experiments/paper-cpu.yaml for the measurements); everything else is the paper's setting.
Each model is trained once, on first use, into the model cache.
"""

from __future__ import annotations

from pathlib import Path

from xbench.training.config import TrainConfig

RECIPE = {"base": "me5-small", "general": ["tatoeba", "arcd"], "seed": 0, "steps": 300, "batch_size": 32,
          "freeze_embeddings": True, "freeze_layers": 6, "max_seq_length": 64}
RECIPES = {f"me5-small-{s}": TrainConfig(sampling=s, **RECIPE) for s in ("hybrid", "mono", "cross")}


def build_trained(name: str, cache_root: Path, device: str) -> Path:
    """The trained built-in's folder, training it first (with a progress bar) when it is not cached yet."""
    from xbench.training.train import read_card, train

    dest = cache_root / "models" / name
    if read_card(dest) is None:
        config = RECIPES[name]
        print(f"Training {name} once from me5-small ({config.sampling} batches, {config.steps} steps of "
              f"{config.batch_size}; about 7 minutes on 2 free CPU cores) into {dest} ...", flush=True)
    return train(RECIPES[name], dest, device=device, cache_root=cache_root)
