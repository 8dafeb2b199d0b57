"""Encode a frozen prefix once for many models: the hidden states after the embeddings and the first k layers.

Every model of a training grid trained with frozen embeddings and k frozen layers keeps the base model's first k
layers bit for bit, so for a given token sequence the hidden states after them are the same in every model. An
experiment evaluates ~16 such models on the same ~25k texts; computing those states once and running only the
top layers per model cuts each evaluation's encoding by about k / n_layers (the encode-once rule, one level
down). The speed-up is what lets a CPU grid evaluate every model on XQuAD-R and MLQA-R at all.

`share_prefix(model, k, store)` rewires a loaded SentenceTransformer in place: its backbone's embeddings module
becomes a `_Replay` that returns each row's layer-k states (computed on a miss by the model's own embeddings and
first k layers, then kept in `store` under the sha256 of those weights and the row's token ids) and its encoder
keeps layers k and up. Tokenisation, prompts, the attention mask, pooling and normalisation stay the libraries'
own. A row is computed in another batch than the ones that later read it, so vectors match the plain path to
float32 rounding (~1e-6), not bit for bit.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch
from torch import nn


class PrefixStore:
    """Layer-k hidden states per (prefix weights sha256, token ids), in memory for one process (an experiment):
    about texts x tokens x hidden x 4 bytes (25k XQuAD/MLQA texts on me5-small: ~1.6 GB)."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}


def _weights_sha(modules: list[nn.Module]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _Replay(nn.Module):
    """Stands in for the backbone's embeddings: input ids in, layer-k hidden states out (zeros on padding)."""

    def __init__(self, prefix: nn.Module, key: str, pad_id: int, store: PrefixStore) -> None:
        super().__init__()
        self.prefix, self.key, self.pad_id, self.store = prefix, key, pad_id, store

    def forward(self, input_ids: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if input_ids is None:
            raise ValueError("the shared-prefix path reads token ids; inputs_embeds cannot be replayed")
        lengths = (input_ids != self.pad_id).sum(dim=1).tolist()
        keys = [(self.key, tuple(row[:n].tolist())) for row, n in zip(input_ids, lengths)]
        missing = [i for i, key in enumerate(keys) if key not in self.store.states]
        if missing:
            ids = input_ids[missing]
            hidden = self.prefix(input_ids=ids, attention_mask=(ids != self.pad_id).long()).last_hidden_state
            for j, i in enumerate(missing):
                self.store.states[keys[i]] = hidden[j, : lengths[i]].clone()
        first = self.store.states[keys[0]]
        out = first.new_zeros((len(keys), input_ids.shape[1], first.shape[-1]))
        for i, key in enumerate(keys):
            out[i, : lengths[i]] = self.store.states[key]
        return out


def share_prefix(model: Any, layers: int, store: PrefixStore) -> bool:
    """Rewire `model` to take its first `layers` layers' output from `store`. False, and the model untouched, when
    that cannot be done exactly: no BERT-style backbone (`embeddings` + `encoder.layer`), left padding, or
    `layers` out of range."""
    backbone = getattr(model[0], "auto_model", None)
    tokenizer = getattr(model[0], "tokenizer", None)
    stack = getattr(getattr(backbone, "encoder", None), "layer", None)
    if (backbone is None or tokenizer is None or stack is None or not hasattr(backbone, "embeddings")
            or not 0 < layers <= len(stack) or tokenizer.pad_token_id is None or tokenizer.padding_side != "right"):
        return False
    config = copy.deepcopy(backbone.config)
    config.num_hidden_layers = layers
    try:
        with torch.device("meta"):  # the shell only: its modules are replaced by the model's own below
            prefix = type(backbone)(config, add_pooling_layer=False)
    except TypeError:
        return False
    prefix.embeddings = backbone.embeddings
    prefix.encoder.layer = nn.ModuleList(stack[:layers])
    prefix.eval()
    key = _weights_sha([backbone.embeddings, *stack[:layers]])
    backbone.embeddings = _Replay(prefix, key, tokenizer.pad_token_id, store)
    backbone.encoder.layer = nn.ModuleList(stack[layers:])
    return True
