"""Large passage corpora (MIRACL: 33M passages for English) as Parquet, converted once and streamed every run.

A corpus folder holds `corpus.parquet` (string columns docid, title, text; zstd; row groups of ROW_GROUP rows)
and `corpus.json`, its manifest: row count, file size, a content sha256, provenance, and the rows a run must not
rank as they are (repeated docids, blank titles and texts). corpus.json is written last, so its presence means
the conversion finished. A run opens the folder (`open_corpus`, or `find_or_convert` for a BEIR corpus.jsonl
that is converted into the cache on first use), takes a `CorpusView` (a template, an optional set of docids to
keep, an id prefix) and streams its templated texts in chunks: templating and filtering happen in Arrow, and
only the chunk being handed out becomes Python strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from xbench.errors import XbenchError
from xbench.io import scratch, write_atomic

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

FORMAT = 1
ROW_GROUP = 65_536  # rows per Parquet row group: the unit a view reads, skips and filters
PARQUET, MANIFEST = "corpus.parquet", "corpus.json"
SOURCES = ("corpus.jsonl", "corpus.jsonl.gz")  # BEIR corpus files, plain or compressed
COLUMNS = ("docid", "title", "text")
FIELDS = ("text", "title")  # what a template may use
RECORD = '{"_id": "<docid>", "title": "...", "text": "..."} (or "docid" for "_id"; "title" optional)'
JSON_BLOCK = 1 << 24  # bytes of JSON lines parsed at a time; a single record must fit


@dataclass(frozen=True)
class CorpusManifest:
    """corpus.json. Row numbers count from 0 in file order."""

    format: int
    rows: int
    bytes: int  # size of corpus.parquet: a cheap check that the file is the one converted
    sha256: str  # of the content (see _ContentHash), whatever the source format or batching
    source: str  # free text: where the passages came from
    converted: str  # ISO time
    duplicate_rows: tuple[int, ...]  # rows whose docid occurred before
    blank_title_rows: tuple[int, ...]  # empty or whitespace only
    blank_text_rows: tuple[int, ...]

    @classmethod
    def read(cls, path: Path) -> CorpusManifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fields: dict[str, Any] = {k: tuple(v) if k.endswith("_rows") else v for k, v in data.items()}
            manifest = cls(**fields)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise XbenchError(f"{path}: not a corpus manifest ({exc}); reconvert the corpus with "
                              f"`xbench data convert SRC --out {path.parent}`.") from None
        if manifest.format != FORMAT:
            raise XbenchError(f"{path}: field `format` is {manifest.format!r}; this xbench reads format {FORMAT}. "
                              f"Reconvert with `xbench data convert SRC --out {path.parent}`.")
        return manifest

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), indent=1) + "\n")


class _ContentHash:
    """sha256 per column of the UTF-8 bytes and of the value lengths (int64 LE), combined at the end: the same
    rows give the same hash however they were batched, and moving a character between values or columns does
    not."""

    def __init__(self) -> None:
        self._parts = {(c, part): hashlib.sha256() for c in COLUMNS for part in ("bytes", "lengths")}

    def update(self, table: pa.Table) -> None:
        for column in COLUMNS:
            for chunk in table.column(column).chunks:
                _, offsets_buf, data = chunk.buffers()  # pa.string(): int32 offsets, read in place
                offsets = np.frombuffer(offsets_buf, np.int32, len(chunk) + 1, chunk.offset * 4)
                if data is not None:
                    self._parts[column, "bytes"].update(memoryview(data)[offsets[0]:offsets[-1]])
                self._parts[column, "lengths"].update(np.diff(offsets).astype("<i8").tobytes())

    def hexdigest(self) -> str:
        return hashlib.sha256("".join(h.hexdigest() for h in self._parts.values()).encode()).hexdigest()


def _normalised(item: pa.RecordBatch | pa.Table, source: str, before: int) -> pa.Table:
    """Columns docid, title, text as non-null pa.string() (a missing title or text is ""); `before` rows came
    earlier, so a record without an id is named by its number."""
    import pyarrow as pa  # lazy: heavy
    import pyarrow.compute as pc

    table = item if isinstance(item, pa.Table) else pa.Table.from_batches([item])
    columns = {}
    for name in COLUMNS:
        if name in table.column_names:
            column = table.column(name)
        elif name == "title":
            column = pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
        else:
            raise XbenchError(f"{source}: the passages have no `{name}` field; expected records {RECORD}.")
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_null(column.type)):
            raise XbenchError(f"{source}: field `{name}` holds {column.type} values, not strings; expected "
                              f"records {RECORD}.")
        column = column.cast(pa.string())
        if name == "docid" and column.null_count:
            first = before + int(np.argmax(column.is_null().to_numpy(zero_copy_only=False))) + 1
            raise XbenchError(f"{source}: record {first:,} has no id; every passage needs its docid: expected "
                              f"records {RECORD}.")
        columns[name] = pc.fill_null(column, "")
    return pa.table(columns)


def _blank_rows(column: pa.ChunkedArray, before: int) -> list[int]:
    """Rows (numbered from `before`) that are empty or whitespace only, as Python's str.strip() sees it."""
    import pyarrow.compute as pc  # lazy: heavy

    blank = pc.or_(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(column))
    return (np.flatnonzero(blank.to_numpy(zero_copy_only=False)) + before).tolist()


def _duplicate_rows(ids: pa.ChunkedArray) -> list[int]:
    """Rows whose docid occurred at an earlier row. Dictionary encoding numbers the distinct ids in order of first
    occurrence, so a row repeats an id iff its number does not raise the running maximum (ids only in memory)."""
    import pyarrow.compute as pc  # lazy: heavy

    encoded = pc.dictionary_encode(ids)
    if not encoded.num_chunks or len(encoded.chunks[-1].dictionary) == len(ids):
        return []
    running = np.maximum.accumulate(np.concatenate([c.indices.to_numpy() for c in encoded.chunks]))
    return (np.flatnonzero(running[1:] <= running[:-1]) + 1).tolist()


def _row_groups(tables: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of exactly `size` rows (the last one shorter); zero-copy."""
    import pyarrow as pa  # lazy: heavy

    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        while count >= size:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, size)
            pending, count = [merged.slice(size)], count - size
    if count:
        yield pa.concat_tables(pending)


def convert_batches(batches: Iterable[pa.RecordBatch | pa.Table], dest: Path, source: str, total: int | None = None,
                    *, desc: str | None = None, row_group: int = ROW_GROUP) -> CorpusManifest:
    """Write `dest/corpus.parquet` and then `dest/corpus.json` from passages in batches (columns docid, text and
    optionally title); the content hash, blank rows and duplicate ids are found on the way. Interrupted, it
    leaves no corpus.json, so the folder reads as unfinished and a rerun starts over."""
    import pyarrow as pa  # lazy: heavy
    import pyarrow.parquet as pq

    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)
    tmp = scratch(dest, f".{PARQUET}.", ".tmp", folder=False)
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    content, ids = _ContentHash(), []  # ids: the docid column's arrays, for the repeats found at the end
    blank: dict[str, list[int]] = {"title": [], "text": []}
    received = written = 0  # rows taken in, rows written (the row groups lag behind by less than one)

    def normalised() -> Iterator[pa.Table]:
        nonlocal received
        for item in batches:
            table = _normalised(item, source, received)
            received += table.num_rows
            yield table

    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=["title"], write_statistics=False) \
                as writer, tqdm(total=total, desc=desc or f"converting {dest.name}", unit="passage",
                                unit_scale=True) as bar:
            for table in _row_groups(normalised(), row_group):
                writer.write_table(table, row_group_size=row_group)
                content.update(table)
                ids += table.column("docid").chunks
                for name, found in blank.items():
                    found += _blank_rows(table.column(name), written)
                written += table.num_rows
                bar.update(table.num_rows)
        os.replace(tmp, dest / PARQUET)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    manifest = CorpusManifest(
        format=FORMAT, rows=written, bytes=(dest / PARQUET).stat().st_size, sha256=content.hexdigest(), source=source,
        converted=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duplicate_rows=tuple(_duplicate_rows(pa.chunked_array(ids, pa.string()))),
        blank_title_rows=tuple(blank["title"]), blank_text_rows=tuple(blank["text"]))
    manifest.write(dest / MANIFEST)
    return manifest


def convert_jsonl(src: Path, dest: Path, source: str, *, row_group: int = ROW_GROUP) -> CorpusManifest:
    """A BEIR / MIRACL corpus (JSON lines, plain or .gz) into `dest`, streamed: memory holds a few blocks."""
    import pyarrow as pa  # lazy: heavy
    import pyarrow.compute as pc
    from pyarrow import json as pa_json

    fields = ("_id", "docid", "title", "text")
    schema = pa.schema([(name, pa.string()) for name in fields])
    read = {"rows": 0, "blocks": 0}

    def tables() -> Iterator[pa.Table]:
        try:
            reader = pa_json.open_json(src, read_options=pa_json.ReadOptions(block_size=JSON_BLOCK),
                                       parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                                                          unexpected_field_behavior="ignore"))
            for batch in reader:
                read["blocks"] += 1
                read["rows"] += batch.num_rows
                yield pa.table({"docid": pc.coalesce(batch.column("_id"), batch.column("docid")),
                                "title": batch.column("title"), "text": batch.column("text")})
        except FileNotFoundError:
            raise XbenchError(f"{src}: corpus file not found.") from None
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            raise XbenchError(f"{src}: cannot be read as JSON lines of passages (block {read['blocks'] + 1} of "
                              f"{JSON_BLOCK >> 20} MiB, after record {read['rows']:,}: {exc}); expected one record "
                              f"per line, {RECORD}, with string values.") from None

    return convert_batches(tables(), dest, source, desc=f"converting {src.name}", row_group=row_group)


@dataclass(frozen=True)
class Corpus:
    """A converted corpus folder: its manifest, and views of it for runs."""

    folder: Path
    manifest: CorpusManifest

    @property
    def path(self) -> Path:
        return self.folder / PARQUET

    @property
    def fingerprint(self) -> str:
        return self.manifest.sha256[:32]

    @property
    def rows(self) -> int:
        return self.manifest.rows

    def file(self) -> pq.ParquetFile:
        import pyarrow.parquet as pq  # lazy: heavy

        return pq.ParquetFile(self.path)

    def view(self, template: str, *, keep: Collection[str] | None = None, prefix: str = "",
             field: str = "doc_template", task: str = "") -> CorpusView:
        """The rows a run ranks, templated: see CorpusView."""
        return CorpusView(self, template, keep, prefix, field, task)


def open_corpus(folder: Path) -> Corpus:
    """A converted folder, checked against its manifest (a changed or unfinished corpus is refused)."""
    parquet = folder / PARQUET
    if not (folder / MANIFEST).is_file():
        if parquet.is_file():
            raise XbenchError(f"{parquet}: has no {MANIFEST} beside it, so its conversion was interrupted; convert "
                              f"again with `xbench data convert SRC --out {folder}`.")
        raise XbenchError(f"{folder}: holds no converted corpus ({PARQUET} and {MANIFEST}); write one with "
                          f"`xbench data convert SRC --out {folder}`.")
    manifest = CorpusManifest.read(folder / MANIFEST)
    size = parquet.stat().st_size if parquet.is_file() else None
    if size != manifest.bytes:
        found = "is missing" if size is None else f"has {size:,} bytes, not the {manifest.bytes:,} of {MANIFEST}"
        raise XbenchError(f"{parquet}: {found}; the file changed after its conversion. Reconvert it with "
                          f"`xbench data convert SRC --out {folder}`.")
    return Corpus(folder, manifest)


def source_file(folder: Path) -> Path | None:
    """A folder's BEIR corpus file, plain or gzip-compressed, if there is one."""
    return next((folder / name for name in SOURCES if (folder / name).is_file()), None)


def find_or_convert(folder: Path, cache_root: Path) -> Corpus | None:
    """The corpus in `folder`: a converted one, or its corpus.jsonl(.gz) converted once into
    `cache_root/corpora/<key>/` (the key names the file's path, size and mtime, so an edited file converts
    again); None if the folder holds neither."""
    if (folder / MANIFEST).exists() or (folder / PARQUET).exists():
        return open_corpus(folder)
    src = source_file(folder)
    if src is None:
        return None
    stat = src.stat()
    key = hashlib.sha256(json.dumps([str(src.resolve()), stat.st_size, stat.st_mtime_ns]).encode()).hexdigest()
    dest = cache_root / "corpora" / key[:16]
    if not (dest / MANIFEST).is_file():
        print(f"Converting {src} to Parquet, once, into {dest} ...", flush=True)
        convert_jsonl(src, dest, str(src.resolve()))
    return open_corpus(dest)


def convert_path(src: Path, out: Path, source: str | None = None) -> Iterator[tuple[Path, CorpusManifest]]:
    """`xbench data convert`: a BEIR corpus file into `out`, or each `src/<lang>/corpus.jsonl(.gz)` into
    `out/<lang>/`; yields (folder, manifest) as each is done."""
    if src.is_file():
        jobs = [(src, out)]
    elif src.is_dir():
        jobs = [(path, out / sub.name) for sub in sorted(src.iterdir()) if (path := source_file(sub)) is not None]
        if not jobs:
            raise XbenchError(f"{src}: holds no <lang>/corpus.jsonl(.gz); give a BEIR corpus file or a folder of "
                              "language folders holding one each.")
    else:
        raise XbenchError(f"{src}: no such file or folder; give a BEIR corpus.jsonl(.gz) or a folder of them.")
    for path, dest in jobs:
        yield dest, convert_jsonl(path, dest, source or str(path.resolve()))


def _template_parts(template: str, field: str, task: str) -> list[tuple[bool, str]]:
    """(is_field, literal or field name) pieces of a str.format template, checked like fill_template checks."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise XbenchError(f"task {task}: field `{field}` is not a valid template ({exc}); write e.g. "
                          "'{title} {text}' (a literal brace as {{ or }}).") from None
    parts = []
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append((False, literal))
        if name is None:
            continue
        if name not in FIELDS:
            raise XbenchError(f"task {task}: field `{field}` uses unknown placeholder {name!r}; available: "
                              f"{sorted(FIELDS)}.")
        if spec or conversion:
            raise XbenchError(f"task {task}: field `{field}` formats {{{name}}} ({template!r}); corpus templates "
                              "take plain {title} and {text} placeholders only.")
        parts.append((True, name))
    if not any(is_field for is_field, _ in parts):
        raise XbenchError(f"task {task}: field `{field}` is {template!r}, which uses neither {{title}} nor {{text}}, "
                          "so every passage would read the same.")
    return parts


def _row_mask(n: int, rows: Collection[int]) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[np.asarray(rows, np.int64)] = True
    return mask


class CorpusView:
    """What a run ranks: the corpus rows that survive, in corpus order, as `prefix + docid` and templated texts.

    Dropped: a repeated docid after its first row; a row whose templated text would be blank (known from the
    manifest's blank rows: only a template without non-space literal text can give one); with `keep`, a row whose
    docid is not in it. The view holds a boolean row mask, never texts.
    """

    def __init__(self, corpus: Corpus, template: str, keep: Collection[str] | None, prefix: str, field: str,
                 task: str) -> None:
        import pyarrow as pa  # lazy: heavy
        import pyarrow.compute as pc

        self.corpus, self.template, self.prefix = corpus, template, prefix
        self._parts = _template_parts(template, field, task)
        self._fields = list(dict.fromkeys(name for is_field, name in self._parts if is_field))
        manifest, n = corpus.manifest, corpus.rows
        file = corpus.file()
        sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
        self._bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # corpus rows per row group

        wanted = np.ones(n, bool)
        if keep is not None:
            value_set = pa.array(list(keep), pa.string())
            for g in range(file.num_row_groups):
                ids = file.read_row_group(g, columns=["docid"]).column("docid")
                wanted[self._bounds[g]:self._bounds[g + 1]] = pc.is_in(ids, value_set=value_set).to_numpy(
                    zero_copy_only=False)
        repeated = _row_mask(n, manifest.duplicate_rows)
        blank = np.zeros(n, bool)
        if all(is_field or not text.strip() for is_field, text in self._parts):  # blank iff every field used is
            blank = np.logical_and.reduce([_row_mask(n, getattr(manifest, f"blank_{name}_rows"))
                                           for name in self._fields])
        self._mask = wanted & ~repeated & ~blank
        kept = [int(self._mask[a:b].sum()) for a, b in zip(self._bounds[:-1], self._bounds[1:])]
        self._starts = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])  # view position of each row group
        self.rows = int(self._starts[-1])
        dropped = int((wanted & repeated).sum()), int((wanted & ~repeated & blank).sum())
        self.notes = [f"{corpus.path}: {dropped[0]:,} repeated docids (first kept) and {dropped[1]:,} blank "
                      "passages left out."] if any(dropped) else []
        keep_digest = None if keep is None else hashlib.sha256(json.dumps(sorted(keep)).encode()).hexdigest()
        self.fingerprint = hashlib.sha256(json.dumps([corpus.fingerprint, template, prefix, keep_digest]).encode()
                                          ).hexdigest()[:32]

    def _groups(self, columns: list[str], first: int = 0) -> Iterator[tuple[int, pa.Table]]:
        """(row group, its kept rows' `columns`) from row group `first` on; groups with no kept row are not read.
        The next group is read in a background thread (Arrow releases the GIL) while the caller uses this one, so
        decompression overlaps the caller's work (building strings, encoding)."""
        import pyarrow as pa  # lazy: heavy

        file = self.corpus.file()
        todo = [g for g in range(first, len(self._bounds) - 1) if self._starts[g + 1] > self._starts[g]]

        def read(g: int) -> pa.Table:
            table = file.read_row_group(g, columns=columns)
            mask = self._mask[self._bounds[g]:self._bounds[g + 1]]
            return table if mask.all() else table.filter(pa.array(mask))

        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = [pool.submit(read, g) for g in todo[:1]]  # at most one group read ahead
            for i, g in enumerate(todo):
                table = ahead.pop().result()
                ahead += [pool.submit(read, h) for h in todo[i + 1:i + 2]]
                yield g, table

    def _render(self, table: pa.Table) -> pa.ChunkedArray:
        import pyarrow.compute as pc  # lazy: heavy

        args = [table.column(value) if is_field else value for is_field, value in self._parts]
        return args[0] if len(args) == 1 else pc.binary_join_element_wise(*args, "")

    def ids(self) -> pa.Array:
        """`prefix + docid` of every row, in view order (reads the docid column only)."""
        import pyarrow as pa  # lazy: heavy
        import pyarrow.compute as pc

        ids = pa.chunked_array([c for _, t in self._groups(["docid"])
                                for c in t.column("docid").chunks], pa.string()).combine_chunks()
        return pc.binary_join_element_wise(self.prefix, ids, "") if self.prefix else ids

    def batches(self, rows: int, start: int = 0, desc: str | None = None) -> Iterator[tuple[int, list[str]]]:
        """(view position of the first text, templated texts) in view order, `rows` texts at a time (the last
        chunk shorter), from view position `start`; row groups wholly before `start` are not read."""
        import pyarrow as pa  # lazy: heavy

        if rows < 1:
            raise ValueError(f"rows must be positive, got {rows}")
        first = max(int(np.searchsorted(self._starts, start, side="right")) - 1, 0)
        carry, position = pa.chunked_array([], pa.string()), start
        with tqdm(total=max(self.rows - start, 0), desc=desc, disable=desc is None, unit="passage",
                  unit_scale=True) as bar:
            for g, table in self._groups(self._fields, first):
                texts = self._render(table).slice(max(start - int(self._starts[g]), 0))
                carry = pa.chunked_array(carry.chunks + texts.chunks, pa.string())
                while len(carry) >= rows:
                    yield position, carry.slice(0, rows).to_pylist()
                    carry, position = carry.slice(rows), position + rows
                    bar.update(rows)
            if len(carry):
                yield position, carry.to_pylist()
                bar.update(len(carry))
