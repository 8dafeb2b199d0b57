"""`xbench train`: fine-tune a base encoder with hybrid batches on the sentence-transformers trainer.

Loss: in-batch negatives (MultipleNegativesRankingLoss, cosine x 20), the cached variant (gradient caching) when
the batch is larger than `mini_batch_size`, so a paper-size batch of 100 fits in memory. Optimiser as in the
paper: AdamW, lr 3e-5, weight decay 0.01, linear schedule with warm-up. Texts get the paper's "Query: " /
"Passage: " prefixes, stored as the model's `prompts` (query / document) so evaluation applies them too.

Work happens in `.<out>.training/` next to the output: the built base (tiny), the trainer's checkpoints
(every `save_steps`, so an interrupted run resumes where it stopped, with the same batches) and the final
model, which is renamed onto `out` only when complete, with its card (`xbench_card.json`) and the hashes of
every training text (`xbench_train_hashes.npy`, read by the leakage guard).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xbench.errors import XbenchError
from xbench.io import write_atomic
from xbench.models.built import read_build
from xbench.models.builtins import build_me5
from xbench.models.st import load_sentence_transformer
from xbench.paths import default_cache_root
from xbench.provenance import __version__, library_versions
from xbench.tasks.leakage import HASHES_FILE, write_hashes
from xbench.training.config import PROMPTS, TrainConfig
from xbench.training.data import load_pairs
from xbench.training.sampler import BatchPlan, composition, sampler_factory
from xbench.training.tiny import build_tiny

CARD_FILE = "xbench_card.json"


def _base_model(config: TrainConfig, work: Path, texts: list[str], device: str,
                cache_root: Path) -> tuple[Any, dict[str, Any]]:
    """Load the base as a SentenceTransformer, with a description of what it is for the card."""
    about: dict[str, Any]
    if config.base == "tiny":
        path = work / "base" / "model"
        if not path.is_dir():
            build_tiny(work / "base", texts, config.seed)
        about = {"name": "tiny", "description": "2-layer BERT (hidden 32) + WordPiece tokenizer built from the "
                                                "training texts, initialised from the seed"}
    elif config.base == "me5-small":
        path = build_me5(cache_root)
        about = {"name": "me5-small", "build": read_build(path)}
    else:
        path = Path(config.base).expanduser()
        if not path.is_dir():
            raise XbenchError(f"--base {config.base}: not me5-small, tiny or a local model folder.")
        about = {"name": str(path.resolve())}
    encoder = load_sentence_transformer(str(path), pooling=None, device=device, batch_size=config.batch_size)
    return encoder.model, {**about, "fingerprint": encoder.info.fingerprint}


def _freeze(model: Any, config: TrainConfig) -> int:
    """Freeze the token embeddings and the lowest layers (the CPU budget); returns the trainable parameters."""
    backbone = getattr(model[0], "auto_model", None)
    if backbone is None and (config.freeze_embeddings or config.freeze_layers):
        raise XbenchError("--base: the model has no transformer backbone to freeze parts of; pass "
                          "--no-freeze-embeddings and --freeze-layers 0.")
    if config.freeze_embeddings:
        assert backbone is not None  # a model without one raised above
        backbone.get_input_embeddings().requires_grad_(False)
    if config.freeze_layers:
        assert backbone is not None  # a model without one raised above
        layers = getattr(getattr(backbone, "encoder", None), "layer", None)
        if layers is None or config.freeze_layers > len(layers):
            raise XbenchError(f"--freeze-layers {config.freeze_layers}: the base has "
                              f"{len(layers) if layers is not None else 'no'} BERT-style encoder layers.")
        backbone.embeddings.requires_grad_(False)
        for layer in layers[:config.freeze_layers]:
            layer.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _loss(model: Any, config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """In-batch negatives; gradient caching when the batch exceeds the mini-batch (same gradients, less memory)."""
    # lazy: heavy (torch); only when a model runs
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    if config.batch_size > config.mini_batch_size:
        loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
        return loss, {"name": "CachedMultipleNegativesRankingLoss", "scale": loss.scale,
                      "mini_batch_size": config.mini_batch_size, "similarity": "cosine"}
    plain = MultipleNegativesRankingLoss(model)
    return plain, {"name": "MultipleNegativesRankingLoss", "scale": plain.scale, "similarity": "cosine"}


def _claim_work_dir(work: Path, config: TrainConfig) -> None:
    """A work folder belongs to one config: resuming someone else's checkpoints would mix two models."""
    stamp = work / "config.json"
    if stamp.is_file():
        if json.loads(stamp.read_text(encoding="utf-8")) != config.model_dump(mode="json"):
            raise XbenchError(f"{work} holds an interrupted training with another configuration ({stamp}). "
                              "Delete that folder, or train into another --out.")
        return
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(stamp, config.model_dump_json(indent=2))


def read_card(folder: Path) -> dict[str, Any] | None:
    path = folder / CARD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def train(config: TrainConfig, out: Path, *, device: str = "cpu", cache_root: Path | None = None,
          progress: bool = True, threads: int | None = None) -> Path:
    """Train (or resume) the model `config` describes into `out`; an already complete `out` is returned as is.
    `threads` caps torch's CPU threads: on a busy machine one thread can be many times faster than two."""
    out = Path(out).expanduser()
    card = read_card(out)
    if card is not None:
        if card["config"] != config.model_dump(mode="json"):
            raise XbenchError(f"{out} already holds a model trained with another configuration ({out / CARD_FILE}); "
                              "pass another --out.")
        return out
    if out.exists():
        raise XbenchError(f"{out} exists but holds no trained model ({CARD_FILE} missing); delete it or pass "
                          "another --out.")
    try:
        import accelerate  # noqa: F401  (the transformers Trainer needs it)
    except ImportError:
        raise XbenchError("training needs the accelerate package: pip install 'accelerate>=1.1'") from None
    import torch  # lazy: heavy; only when a model runs
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    if device == "cuda" and not torch.cuda.is_available():
        raise XbenchError("--device cuda: no CUDA device is visible to torch here; use --device cpu.")
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    work = out.parent / f".{out.name}.training"
    _claim_work_dir(work, config)
    pairs, provenance = load_pairs([*config.general, *config.domain], seed=config.seed,
                                   max_pairs_per_group=config.max_pairs_per_group, languages=config.languages)
    plan = BatchPlan(pairs, config.effective_alpha, dict(config.domain))
    texts = sorted(set(pairs["query"]) | set(pairs["passage"]))
    model, base = _base_model(config, work, texts, device, cache_root or default_cache_root())
    eval_max_length = model.max_seq_length
    train_max_length = model.max_seq_length = min(config.max_seq_length, eval_max_length)
    model.prompts = dict(PROMPTS)
    trainable_params = _freeze(model, config)
    loss, loss_card = _loss(model, config)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "checkpoints"), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr, weight_decay=config.weight_decay, warmup_steps=config.warmup,
        lr_scheduler_type="linear", seed=config.seed, data_seed=config.seed, save_strategy="steps",
        save_steps=config.save_steps, save_total_limit=1, logging_steps=max(1, min(50, config.steps // 10)),
        report_to="none", disable_tqdm=not progress, use_cpu=device == "cpu", dataloader_num_workers=0,
        batch_sampler=sampler_factory(plan), prompts={"query": PROMPTS["query"], "passage": PROMPTS["document"]},
    )
    dataset = Dataset.from_dict({"query": pairs["query"].tolist(), "passage": pairs["passage"].tolist()})
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    resume = get_last_checkpoint(str(work / "checkpoints")) if (work / "checkpoints").is_dir() else None
    trainer.train(resume_from_checkpoint=resume)

    model.max_seq_length = eval_max_length
    final = work / "model"
    shutil.rmtree(final, ignore_errors=True)
    model.save(str(final), create_model_card=False)
    n_hashes = write_hashes(final, texts)
    card = {
        "format": 1, "xbench_version": __version__, "config": config.model_dump(mode="json"),
        "base": base, "sampling": config.sampling, "alpha": config.effective_alpha, "beta": config.beta,
        "seed": config.seed, "steps": config.steps, "batch_size": config.batch_size,
        "languages": sorted(set(pairs["query_lang"]) | set(pairs["passage_lang"])),
        "sources": {name: {"role": "domain" if name in config.domain else "general",
                           "share": config.domain.get(name), **info} for name, info in provenance.items()},
        "pairs": len(pairs), "composition": composition(plan, config.seed, min(config.steps, 2000), config.batch_size),
        "loss": loss_card, "optimizer": {"name": "AdamW", "lr": config.lr, "weight_decay": config.weight_decay,
                                         "schedule": "linear", "warmup": config.warmup},
        "prompts": PROMPTS, "train_max_seq_length": train_max_length,
        "frozen": {"embeddings": config.freeze_embeddings, "layers": config.freeze_layers},
        "trainable_parameters": trainable_params, "device": device, "versions": library_versions(),
        "resumed_from": Path(resume).name if resume else None,
        "train_seconds": round(time.perf_counter() - started, 1),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "text_hashes": {"file": HASHES_FILE, "count": n_hashes},
    }
    write_atomic(final / CARD_FILE, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    os.rename(final, out)
    shutil.rmtree(work, ignore_errors=True)
    return out
