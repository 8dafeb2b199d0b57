"""What the report says about a model and a task beyond their scores: model metadata from the model card stored in
results files, and the links of a task's data source and citation."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

from xbench.paths import DATA_ROOT, TASK_SPECS
from xbench.tasks.spec import TaskSpec

# shown field -> the card keys that hold it, first found wins (cards come from many loaders and from submissions)
MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "parameters": ("parameters", "n_parameters", "num_parameters"),
    "embedding size": ("embedding_dim", "embedding_size", "dimensions", "dim"),
    "max tokens": ("max_seq_length", "max_tokens"),
    "license": ("license",),
    "link": ("url", "link", "homepage"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB = "https://huggingface.co/"

# the method this benchmark follows, cited on every page
METHOD_CITATION = ("Roy, Constant, Al-Rfou, Barua, Phillips, Yang. LAReQA: Language-agnostic answer retrieval from a "
                   "multilingual pool. EMNLP 2020.")
METHOD_LINKS = {"paper (arXiv:2004.05484)": "https://arxiv.org/abs/2004.05484",
                "data and code": "https://github.com/google-research-datasets/lareqa"}


def _places(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a card keeps model facts: its top level, its build record, and for a model xbench trained, the card
    of its base model (a fine-tuned model keeps its base's size and link)."""
    base = (card.get("training") or {}).get("base") or {}
    found = [card, card.get("build"), base, base.get("build")]
    return [p for p in found if isinstance(p, dict)]


def model_info(card: dict[str, Any]) -> dict[str, str | None]:
    """MODEL_FIELDS from a model card (None where it does not say). Without a link, a base model given as a hub id
    (`base: intfloat/multilingual-e5-small`) links to its hub page."""
    places = _places(card)
    info: dict[str, str | None] = {}
    for name, keys in MODEL_FIELDS.items():
        value = next((p[k] for p in places for k in keys if p.get(k) not in (None, "")), None)
        info[name] = None if value is None else _shown(name, value)
    if info["link"] is None:
        base = next((p["base"] for p in places if isinstance(p.get("base"), str) and _HUB_ID.match(p["base"])), None)
        info["link"] = HUB + base if base else None
    return info


def _shown(field: str, value: Any) -> str:
    """A card value as the page prints it: a parameter count in millions (117.7M), anything else as given."""
    if field == "parameters" and isinstance(value, int) and not isinstance(value, bool) and value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    return str(value)


def data_source(spec: TaskSpec) -> tuple[str, str | None]:
    """The task's data source as (text, link): a pinned hub dataset links to that revision; a data folder shipped
    with xbench is named as such (its SOURCE.md says where the data came from); any other folder as the spec gives
    it (relative to the spec's file)."""
    hub = spec.source.hub
    if hub is not None:
        return f"{hub.dataset} @ {hub.revision[:12]}", f"{HUB}datasets/{hub.dataset}/tree/{hub.revision}"
    shipped = (TASK_SPECS / (spec.source.dir or "")).resolve()
    if spec.source.dir and shipped.parent == DATA_ROOT.resolve() and shipped.is_dir():
        return f"xbench/data/{shipped.name} (shipped; see its SOURCE.md)", None
    return f"folder {spec.source.dir}", None


_LINKABLE = re.compile(r"https?://[^\s<>\"')]+|arXiv:\d{4}\.\d{4,5}|doi:10\.\d{4,9}/\S+|\b10\.\d{4,9}/[^\s,;]+",
                       re.IGNORECASE)


def _target(found: str) -> str:
    lower = found.lower()
    if lower.startswith("arxiv:"):
        return "https://arxiv.org/abs/" + found[6:]
    if lower.startswith("doi:"):
        return "https://doi.org/" + found[4:]
    return found if lower.startswith("http") else "https://doi.org/" + found


def linked(text: str) -> Markup:
    """Citation text with its URLs, arXiv ids and DOIs as links; everything else escaped."""
    out, at = [], 0
    for m in _LINKABLE.finditer(text):
        found = m.group().rstrip(".,;:")  # the sentence's punctuation is not part of the address
        out += [escape(text[at:m.start()]), Markup('<a href="{}" rel="noopener">{}</a>').format(_target(found), found)]
        at = m.start() + len(found)
    return Markup("").join([*out, escape(text[at:])])
