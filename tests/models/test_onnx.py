"""me5-small-int8: dynamic int8 through ONNX Runtime, a model of its own next to the float32 one."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import numpy as np
import pytest
from helpers import SCRIPT_SAMPLES, invoke, write_tiny_task

from xbench.errors import XbenchError
from xbench.models import onnx
from xbench.models.builtins import ME5_INT8_NAME, build_me5, build_me5_int8, quantized
from xbench.models.registry import LoadOptions, entries
from xbench.models.st import load_sentence_transformer

TEXTS = [*SCRIPT_SAMPLES,
         "Paris is the capital and largest city of France, on the Seine. " * 6]


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing(lib: str) -> str:
        raise PackageNotFoundError(lib)

    monkeypatch.setattr(onnx, "version", missing)
    with pytest.raises(XbenchError, match=r"onnxruntime is not installed\. Fix: pip install 'xbench\[onnx\]'"):
        onnx.build_int8(tmp_path / "source", tmp_path / "int8", "x-int8")


def test_int8_is_a_cpu_model_and_the_quantize_rule_names_it(tmp_path: Path) -> None:
    assert quantized("me5-small", "int8") == ME5_INT8_NAME and ME5_INT8_NAME in entries()
    with pytest.raises(XbenchError, match="no quantized variant of bm25; offered: me5-small --quantize int8"):
        quantized("bm25", "int8")
    with pytest.raises(XbenchError, match="runs on the CPU"):
        entries()[ME5_INT8_NAME].loader(LoadOptions(tmp_path, device="cuda:0"))
    assert not (tmp_path / "models").exists()  # refused before anything was built


def test_cli_quantize_without_a_variant_says_what_is_offered(tmp_path: Path) -> None:
    bad = invoke("run", "--model", "bm25", "--quantize", "int8", "--tasks", "xquad-r", "--output", str(tmp_path))
    assert bad.exit_code == 2 and "--quantize int8: no quantized variant of bm25" in bad.output


def test_the_session_starts_on_the_first_encode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    build = {"source": "/m", "source_build": None, "prompts": {"query": "query: "}, "max_seq_length": 512,
             "inputs": ["input_ids", "attention_mask"], "versions": {"onnxruntime": "1"}}
    (tmp_path / onnx.BUILD_FILE).write_text(json.dumps(build))
    (tmp_path / onnx.MODEL_FILE).write_bytes(b"not a model")

    def opened(*args: object, **kwargs: object) -> None:
        raise AssertionError("session opened")

    monkeypatch.setattr(onnxruntime, "InferenceSession", opened)
    encoder = onnx.load_int8(tmp_path, "x-int8", batch_size=8, threads=1)
    assert encoder.info.card["prompts"] == {"query": "query: "} and encoder.info.card["quantize"] == "int8"
    with pytest.raises(AssertionError, match="session opened"):
        encoder.encode(["a"], "query")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("int8-cache")
    build_me5_int8(root)
    return root


@pytest.mark.slow  # builds me5-small, exports it to ONNX and quantizes it (about a minute on 2 free cores)
def test_cli_quantize_runs_the_int8_model_into_its_own_folder(cache: Path, tmp_path: Path) -> None:
    tasks = write_tiny_task(tmp_path / "t")
    out = tmp_path / "out"
    res = invoke("run", "--model", "me5-small", "--quantize", "int8", "--tasks", "tiny", "--tasks-dir", str(tasks),
                 "--output", str(out), "--cache-dir", str(cache))
    assert res.exit_code == 0, res.output
    written = json.loads((out / ME5_INT8_NAME / "tiny.json").read_text())
    assert written["model"]["name"] == ME5_INT8_NAME and written["model"]["card"]["quantize"] == "int8"
    assert f"--model {ME5_INT8_NAME} " in written["run"]["command"]
    assert not (out / "me5-small").exists()


@pytest.mark.slow  # builds me5-small, exports it to ONNX and quantizes it (about a minute on 2 free cores)
def test_int8_is_its_own_model_close_to_float32(cache: Path) -> None:
    options = LoadOptions(cache, batch_size=4)
    int8 = entries()[ME5_INT8_NAME].loader(options)
    fp32 = entries()["me5-small"].loader(options)
    assert int8.info.name == ME5_INT8_NAME and fp32.info.name == "me5-small"
    assert int8.info.fingerprint != fp32.info.fingerprint
    assert int8.info.card["prompts"] == fp32.info.card["prompts"] and int8.info.card["quantize"] == "int8"
    assert int8.info.card["int8_products"] == "{} ({})".format(*onnx.int8_instructions())
    for role in ("query", "doc"):
        a, b = int8.encoder.encode(TEXTS, role), fp32.encoder.encode(TEXTS, role)
        assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
        cosines = (a * b).sum(axis=1)
        assert cosines.min() >= 0.95 and not np.allclose(a, b, atol=1e-4), cosines  # close, yet quantized


@pytest.mark.slow  # needs the built int8 model
def test_int8_tokens_are_the_float32_models_and_a_rebuild_is_a_no_op(cache: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    int8_dir = cache / "models" / ME5_INT8_NAME
    fp32 = load_sentence_transformer(str(build_me5(cache)), pooling=None, device="cpu", batch_size=4).model
    ours = AutoTokenizer.from_pretrained(str(int8_dir))(["passage: " + t for t in TEXTS], truncation=True,
                                                          max_length=512, padding=True, return_tensors="pt")
    theirs = fp32.preprocess(TEXTS, prompt="passage: ")
    assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
    build = json.loads((int8_dir / onnx.BUILD_FILE).read_text())
    assert build["export_max_abs_difference"] <= onnx.EXPORT_TOLERANCE and "QInt8" in build["quantization"]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt")

    monkeypatch.setattr(onnx, "_export", fail)
    assert build_me5_int8(cache) == int8_dir


def test_incomplete_int8_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "int8").mkdir()
    with pytest.raises(XbenchError, match="not a complete x-int8 build"):
        onnx.build_int8(tmp_path / "source", tmp_path / "int8", "x-int8")


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu sse4_1 avx2 avx512bw avx512_vnni", ("avx512_vnni", "32-bit sums")),
    ("fpu sse4_1 avx2 avx_vnni amx_int8", ("amx_int8", "32-bit sums")),
    ("fpu sse4_1 avx2", ("avx2 without VNNI", "16-bit sums, can saturate")),
])
def test_the_cpus_int8_instructions_are_named(tmp_path: Path, flags: str, expected: tuple[str, str]) -> None:
    """int8 vectors differ between CPUs with and without VNNI, so the results say which one made them."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert onnx.int8_instructions(cpuinfo) == expected


def test_a_cpu_without_cpuinfo_is_named_by_its_architecture(tmp_path: Path) -> None:
    assert onnx.int8_instructions(tmp_path / "missing") == (platform.machine() or "unknown", "the runtime's own")


def test_int8_vectors_of_another_kind_of_cpu_are_another_model(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache shared by a VNNI and an AVX2 machine keeps their int8 vectors apart (the fingerprint keys it)."""
    build = {"source": "src", "source_build": None, "versions": {"onnxruntime": "1"}, "prompts": {},
             "max_seq_length": 8, "inputs": ["input_ids"]}
    (tmp_path / "xbench_build.json").write_text(json.dumps(build))
    (tmp_path / onnx.MODEL_FILE).write_bytes(b"graph")
    cards = {}
    for sums in ("32-bit sums", "16-bit sums, can saturate"):
        monkeypatch.setattr(onnx, "int8_instructions", lambda sums=sums: ("cpu", sums))
        info = onnx.load_int8(tmp_path, "m-int8", batch_size=4, threads=None).info
        cards[info.fingerprint] = info.card["int8_products"]
    assert sorted(cards.values()) == ["cpu (16-bit sums, can saturate)", "cpu (32-bit sums)"]
