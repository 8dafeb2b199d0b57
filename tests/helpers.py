"""Helpers and fixtures shared by the tests: a tiny LAReQA-format task made here, and a tiny real
sentence-transformers model."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from xbench.cli import main
from xbench.tasks.loaders.miracl import qrels_path, topics_path

# Three languages, two articles; "q1" exists everywhere, "q2" only in en and de (MLQA-style partial parallelism).
TINY = {
    "en": [("Sport", [("Cats sleep a lot. Dogs bark loudly at night.", [("q1", "Who barks at night?", 18)])]),
           ("Space", [("The moon orbits the earth. Mars is red.", [("q2", "Which planet is red?", 27)])])],
    "de": [("Sport", [("Katzen schlafen viel. Hunde bellen nachts laut.", [("q1", "Wer bellt nachts?", 22)])]),
           ("Space", [("Der Mond umkreist die Erde. Der Mars ist rot.", [("q2", "Welcher Planet ist rot?", 28)])])],
    "fr": [("Sport", [("Les chats dorment. Les chiens aboient la nuit.", [("q1", "Qui aboie la nuit?", 19)])])],
}


def _sentences(context: str) -> tuple[list[str], list[list[int]]]:
    sentences, breaks, start = [], [], 0
    for part in context.split(". "):
        text = part if part.endswith(".") else part + "."
        end = start + len(text)
        sentences.append(text)
        breaks.append([start, end])
        start = end + 1
    return sentences, breaks


SCRIPT_SAMPLES = [
    "How much protein should a woman eat per day?",
    "Die Katze schläft den ganzen Nachmittag auf dem warmen Sofa.",
    "北京是中华人民共和国的首都，也是政治和文化中心。",
    "القاهرة هي عاصمة جمهورية مصر العربية وأكبر مدنها.",
    "भारत की राजधानी नई दिल्ली है और यह एक बड़ा शहर है।",
    "Москва — столица России и крупнейший город страны.",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
]


def write_tiny_task(root: Path, languages: list[str] | None = None) -> Path:
    """Write data + manifest + spec for a 3-language task named `tiny`; returns the tasks folder."""
    data = root / "data" / "tiny"
    data.mkdir(parents=True)
    languages = languages or list(TINY)
    for lang in languages:
        articles = []
        for title, paragraphs in TINY[lang]:
            paras = []
            for context, qas in paragraphs:
                sentences, breaks = _sentences(context)
                paras.append({"context": context, "sentences": sentences, "sentence_breaks": breaks,
                              "qas": [{"id": i, "question": q, "answers": [{"answer_start": a, "text": ""}]}
                                      for i, q, a in qas]})
            articles.append({"title": title, "paragraphs": paras})
        (data / f"{lang}.json.gz").write_bytes(gzip.compress(json.dumps({"data": articles}).encode(), mtime=0))
    manifest = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                       for p in sorted(data.glob("*.json.gz")))
    (data / "SHA256SUMS").write_text(manifest)
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(
        "tasks:\n"
        "  - name: tiny\n    version: '1'\n    family: test\n    description: tiny LAReQA-format task\n"
        "    loader: lareqa\n    source: {dir: ../data/tiny}\n    license: CC0\n"
        f"    languages: [{', '.join(languages)}]\n"
    )
    return tasks


@pytest.fixture()
def tiny_tasks(tmp_path: Path) -> Path:
    return write_tiny_task(tmp_path)


@pytest.fixture(scope="session")
def tiny_st_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sentence-transformers model: a WordPiece tokenizer built here + a seeded StaticEmbedding."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    from xbench.training.tiny import wordpiece_tokenizer

    corpus = [context + " " + q for lang in TINY.values() for _, paras in lang for context, qas in paras
              for _, q, _ in qas]
    tokenizer = wordpiece_tokenizer(corpus, 300, ["[UNK]", "[PAD]"])  # the same ids in every test session
    weights = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 16)).astype(np.float32)
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)])
    path = tmp_path_factory.mktemp("tiny-st") / "tiny-st"
    model.save(str(path))
    return path


EVIL = "<script>alert(1)</script>|$x_1$"
BOARD = ["mono map", "mono recall@1", "cross map", "cross recall@1", "multi map", "multi recall@10",
         "multi rank_distance", "multi same_lang@10"]


def invoke(*args: str, env: dict[str, str] | None = None):
    """Run the CLI in-process, letting real exceptions (bugs) through."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, tiny_st_model) -> Path:
    """ROOT with tasks/ (the tiny task) and results/{bm25,tiny-st}/tiny.json from `xbench run`, once per session."""
    root = tmp_path_factory.getbasetemp() / "tiny-results"
    if not root.exists():
        tasks = write_tiny_task(root)
        for model, name in (("bm25", "bm25"), (str(tiny_st_model), "tiny-st")):
            res = invoke("run", "--model", model, "--name", name, "--tasks", "tiny", "--tasks-dir", str(tasks),
                         "--output", str(root / "results"), "--cache-dir", str(root / "cache"))
            assert res.exit_code == 0, res.output
    return root


def doctored(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of a results file with `edit` applied to its JSON."""
    raw = json.loads(src.read_text())
    edit(raw)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(raw))
    return dst


def _evil(raw: dict) -> None:
    raw["model"]["name"] = EVIL
    raw["model"]["card"]["note"] = "</script><img src=x onerror=alert(2)>"
    raw["run"]["command"] = 'xbench run --model "<b>bold</b>"'


@pytest.fixture(scope="session")
def report_dirs(tiny_results, tmp_path_factory) -> list[Path]:
    """The real results plus the tiny-st file under a hostile name (same scores: a tie with tiny-st)."""
    extra = tmp_path_factory.mktemp("evil")
    doctored(tiny_results / "results" / "tiny-st" / "tiny.json", extra / "evil" / "tiny.json", _evil)
    return [tiny_results / "results", extra]


class _Tables(HTMLParser):
    """id -> rows of cell texts; a cell with data-k (the model cell) counts as that label."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._id = a.get("id")
            self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self.tables[self._id].append([])
        elif tag in ("td", "th") and self._id:
            self._cell = [a["data-k"]] if "data-k" in a else []
            self._fixed = "data-k" in a

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._fixed:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._id][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._id = None


def html_tables(text: str) -> dict[str, pd.DataFrame]:
    """Every table of a page as strings, indexed by its first column."""
    parser = _Tables()
    parser.feed(text)
    return {k: pd.DataFrame(rows[1:], columns=rows[0]).set_index(rows[0][0]) for k, rows in parser.tables.items()}


# A tiny MIRACL-format task: languages, word pool and the run depth its spec sets.
MIRACL_LANGS = ("sw", "yo")
MIRACL_WORDS = [f"w{i}" for i in range(60)]
MIRACL_DEPTH = 100


def tiny_miracl(seed: int = 0) -> dict[str, dict]:
    """Per language: passages {docid: (title, text)}, topics {qid: text}, qrels {qid: {docid: grade}}.

    Docids (`<article>#<n>`) and query ids are the same strings in both languages, as in real MIRACL; grades
    0, 1 and 2 (MIRACL has 0/1) check that grades reach nDCG. 160 passages per language, so a top-100 run can
    miss relevant ones."""
    rng = np.random.default_rng(seed)
    out = {}
    for lang in MIRACL_LANGS:
        passages = {f"{art}#{n}": (f"{lang} title {art}", " ".join(rng.choice(MIRACL_WORDS, 12)))
                    for art in range(40) for n in range(4)}
        ids = sorted(passages)
        topics, qrels = {}, {}
        for q in range(8):
            judged = rng.choice(ids, 10, replace=False)
            grades = [2, 1, 1, *([0] * 7)]
            qrels[str(q)] = dict(zip(judged.tolist(), grades))
            words = (passages[judged[0]][1].split()[:3] + passages[judged[1]][1].split()[:2]
                     + [str(rng.choice(MIRACL_WORDS))])
            topics[str(q)] = " ".join(words)
        out[lang] = {"passages": passages, "topics": topics, "qrels": qrels}
    return out


def _gz(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def write_task(root: Path, data: dict[str, dict], **options: object) -> Path:
    """Topics + qrels in the shipped format (gzip TSV + SHA256SUMS) and a spec `tinymiracl`; returns the tasks dir."""
    folder = root / "data" / "tinymiracl"
    folder.mkdir(parents=True, exist_ok=True)
    for lang, d in data.items():
        _gz(topics_path(folder, lang), "".join(f"{q}\t{t}\n" for q, t in d["topics"].items()))
        _gz(qrels_path(folder, lang), "".join(f"{q}\tQ0\t{doc}\t{g}\n" for q, rel in d["qrels"].items()
                                              for doc, g in rel.items()))
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                               for p in sorted(folder.glob("*.gz"))))
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    opts = {"variant": "judged", "depth": MIRACL_DEPTH, **options}
    (tasks / "tinymiracl.yaml").write_text(
        "tasks:\n  - name: tinymiracl\n    version: '1'\n    family: test\n    description: tiny MIRACL task\n"
        "    loader: miracl\n    source: {dir: ../data/tinymiracl, hub: {dataset: test/none, revision: '0'}}\n"
        f"    license: CC0\n    languages: [{', '.join(data)}]\n    settings: [mono]\n"
        "    query_template: '{text}'\n    doc_template: '{title} {text}'\n    main_metric: mono.ndcg@10\n"
        f"    metrics: [ndcg@10, recall@100, map, mrr]\n    options: {json.dumps(opts)}\n")
    return tasks


def write_hub_copy(root: Path, data: dict[str, dict]) -> Path:
    """The corpus laid out like the hub dataset miracl/miracl-corpus: gzip JSON lines in two files per language."""
    for lang, d in data.items():
        folder = root / f"miracl-corpus-v1.0-{lang}"
        folder.mkdir(parents=True)
        lines = [json.dumps({"docid": doc, "title": t, "text": x}) + "\n" for doc, (t, x) in d["passages"].items()]
        for part in range(2):
            _gz(folder / f"docs-{part}.jsonl.gz", "".join(lines[part::2]))
    return root


def write_beir(root: Path, data: dict[str, dict], drop: tuple[str, str] | None = None) -> Path:
    """The corpus as BEIR folders <root>/<lang>/corpus.jsonl, optionally without one (lang, docid)."""
    for lang, d in data.items():
        (root / lang).mkdir(parents=True)
        (root / lang / "corpus.jsonl").write_text("".join(
            json.dumps({"_id": doc, "title": t, "text": x}) + "\n" for doc, (t, x) in d["passages"].items()
            if (lang, doc) != drop))
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes): what a refused write must leave unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}
