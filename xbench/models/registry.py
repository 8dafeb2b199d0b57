"""The model registry: `--model NAME` -> a retriever.

A built-in model is a `ModelEntry` whose `loader` builds its retriever; a name prefix (`mteb:`) routes to a
prefix loader; anything else is a local sentence-transformers / transformers folder or (online) a hub id. New
encoders are added with `register` (or `register_prefix`), never by editing `resolve`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from xbench.errors import XbenchError
from xbench.models.base import DenseRetriever, Retriever
from xbench.models.ray import RayEncoder
from xbench.models.st import SentenceTransformerEncoder, load_sentence_transformer

BUILD_FILES = ("xbench_build.json", "xbench_card.json")  # written by a finished build or training


@dataclass(frozen=True)
class Speed:
    """How a torch encoder runs: precision, one process per listed device, or a Ray cluster (`ray` is the
    address for `ray.init`, `ray_actors` the number of actors)."""

    dtype: str = "float32"
    devices: tuple[str, ...] = ()
    ray: str | None = None
    ray_actors: int = 1


@dataclass(frozen=True)
class LoadOptions:
    """Everything `xbench run` passes to a loader."""

    cache_root: Path
    device: str = "cpu"
    batch_size: int = 64
    pooling: str | None = None
    threads: int | None = None
    speed: Speed = Speed()

    def torch_args(self) -> dict[str, Any]:
        return {"device": self.device, "batch_size": self.batch_size, "dtype": self.speed.dtype,
                "devices": self.speed.devices, "cache_root": self.cache_root}


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: `loader` makes its retriever; `build` (if any) makes its folder in the model cache once."""

    name: str
    description: str
    languages: str
    loader: Callable[[LoadOptions], Retriever]
    build: Callable[[LoadOptions], Path] | None = None
    torch: bool = True  # accepts --dtype, --devices and --ray

    def path(self, cache_root: Path) -> Path | None:
        """Where a model built on the user's machine lives (None for models that need no build)."""
        return cache_root / "models" / self.name if self.build is not None else None

    def ready(self, cache_root: Path) -> bool:
        path = self.path(cache_root)
        return path is None or any((path / f).is_file() for f in BUILD_FILES)


MODELS: dict[str, ModelEntry] = {}
PLUGINS = "xbench.models"  # entry-point group: modules that register models when imported (xbench's trained ones too)
PREFIXES: dict[str, Callable[[str, LoadOptions], Retriever]] = {}
ALIASES = {"default": "me5-small"}


def register(entry: ModelEntry) -> ModelEntry:
    """Add a built-in model; a second entry under one name is a programming error, not an override."""
    if entry.name in MODELS:
        raise ValueError(f"model {entry.name!r} is registered twice")
    MODELS[entry.name] = entry
    return entry


@functools.cache
def entries() -> dict[str, ModelEntry]:
    """Every registered model, after importing the modules that declare themselves in the `xbench.models`
    entry-point group (once). The trained built-ins come this way from `xbench.training.recipes`, so the model
    stage never imports the training stage, and another installed package can add its models the same way."""
    for plugin in metadata.entry_points(group=PLUGINS):
        plugin.load()
    return MODELS


def register_prefix(prefix: str, loader: Callable[[str, LoadOptions], Retriever]) -> None:
    """Route every `--model PREFIXrest` to `loader(rest, options)` (e.g. `mteb:NAME`)."""
    PREFIXES[prefix] = loader


def dense(encoder: SentenceTransformerEncoder, options: LoadOptions) -> DenseRetriever:
    """A dense encoder as a retriever through the embedding cache, on a Ray cluster when asked."""
    if options.speed.ray:
        return DenseRetriever(RayEncoder(encoder, options.speed.ray, options.speed.ray_actors, options.cache_root),
                              options.cache_root, options.device)
    return DenseRetriever(encoder, options.cache_root, options.device)


def named(encoder: Any, name: str, kind: str, **card: Any) -> Any:
    """The encoder under a short name that results files and report rows show (not its folder path)."""
    encoder.info = replace(encoder.info, name=name, kind=kind, card={**encoder.info.card, **card})
    return encoder


def load_folder(path: Path, name: str, kind: str, options: LoadOptions, **card: Any) -> DenseRetriever:
    """A model folder xbench built or trained, under its registered name (`card`: facts its model card adds)."""
    encoder = load_sentence_transformer(str(path), pooling=None, **options.torch_args())
    return dense(named(encoder, name, kind, **card), options)


def load_trained(path: Path, name: str, *, cache_root: Path, device: str, batch_size: int) -> Retriever:
    """A model trained by `xbench train` (or an experiment run) at `path`."""
    return load_folder(path, name, "trained", LoadOptions(cache_root, device=device, batch_size=batch_size))


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,79}")


def check_name(label: str) -> str:
    """A model name given by the user (`--name`): it names the results folder and the leaderboard row."""
    if not NAME_PATTERN.fullmatch(label):
        raise XbenchError(f"--name {label!r}: use 1 to 80 letters, digits and . _ @ + - (starting with a letter or "
                          "digit), e.g. --name my-e5-v2; it names the results folder and the leaderboard row.")
    return label


def folder_name(path: Path, fingerprint: str) -> str:
    """The default name of a model loaded from a folder: the folder's name plus a short fingerprint
    (`me5-small@3f2a9c1d`), never its absolute path, and never the name of a built-in or of another folder's
    weights, so two models never share a results folder by default."""
    return f"{path.expanduser().resolve().name}@{fingerprint[:8]}"


def resolve(model: str, *, cache_root: Path, device: str = "cpu", batch_size: int = 64,
            pooling: str | None = None, threads: int | None = None, speed: Speed = Speed(),
            name: str | None = None) -> Retriever:
    """One retriever per run: models are loaded once and reused across tasks and settings. `name` (`--name`)
    replaces the model's default name in results (the cache stays keyed by the model's fingerprint)."""
    retriever = _load(model, LoadOptions(cache_root, device=device, batch_size=batch_size, pooling=pooling,
                                         threads=threads, speed=speed))
    if name is not None:
        retriever.info = replace(retriever.info, name=check_name(name))
    return retriever


def _load(name: str, options: LoadOptions) -> Retriever:
    device, pooling, speed = options.device, options.pooling, options.speed
    name = ALIASES.get(name, name)
    if device == "cuda":
        _require_cuda()
    for prefix, loader in PREFIXES.items():
        if name.startswith(prefix):
            if speed != Speed():
                raise XbenchError(f"--model {name}: {prefix} models run their own loop; drop --dtype, --devices, "
                                  "--ray.")
            return loader(name.removeprefix(prefix), options)
    entry = entries().get(name)
    if entry is not None:
        if not entry.torch and speed != Speed():
            raise XbenchError(f"--model {name}: --dtype, --devices and --ray apply to torch encoders only.")
        return entry.loader(options)
    if pooling not in (None, "mean", "cls"):
        raise XbenchError(f"--pooling {pooling}: use mean or cls.")
    encoder = load_sentence_transformer(name, pooling=pooling, **options.torch_args())
    folder = Path(name).expanduser()
    if folder.is_dir():
        encoder = named(encoder, folder_name(folder, encoder.info.fingerprint), encoder.info.kind)
    return dense(encoder, options)


def _require_cuda() -> None:
    import torch  # heavy: only a --device cuda run pays for it here

    if not torch.cuda.is_available():
        raise XbenchError("--device cuda: no CUDA device is visible to torch here; use --device cpu.")
