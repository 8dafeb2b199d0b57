"""Hybrid batch training (Elmahdy, Lin & Ahmad 2024) on the sentence-transformers trainer.

`data` turns the shipped sources (`xbench/data/train/`, built by `tools/ship.py`) into (query, passage) pairs
with languages,
parallel groups and domains; `sampler` composes each batch (monolingual with probability alpha, a share beta
from domain sources, no two pairs of one parallel group); `config` and `train` fine-tune a base model (`tiny`
builds one from nothing for tests) and write it with its card; `experiment` runs a grid of trainings and
evaluates each; `recipes` holds the seeded recipes of the built-in trained models.
"""
