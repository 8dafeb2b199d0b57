"""Build the training data that ships in `data/train/` from the staged raw sources (deterministic):

    python -m tools.ship /path/to/shared/data

TICO-19, NTREX-128, Mintaka and EXAMS: the raw readers of `tools.sources` and the partition rule of
`xbench.tasks.partition` (the same ones that built the eval data in `data/<source>/`), keeping only the "train" part,
written in the eval files' record format (`train.jsonl.gz`). A record is also dropped when one of its texts
equals, in the leakage guard's normalisation (`xbench.tasks.leakage`, which also ignores punctuation), a text of any
registered task: otherwise `xbench run` would refuse those tasks for the trained models. Tatoeba and ARCD
(training-only sources, no such overlap) are copied in their upstream format, gzip'd. Every folder gets a
SHA256SUMS manifest and its license.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path

from tools.sources import (
    LICENSES,
    exams_records,
    parallel_records,
    read_exams,
    read_mintaka,
    read_ntrex128,
    read_tico19,
)
from xbench.errors import DataUnavailable
from xbench.paths import TRAIN_DATA
from xbench.tasks.leakage import text_hashes
from xbench.tasks.partition import assign
from xbench.tasks.registry import discover

TRAIN_FILE = "train.jsonl.gz"

READERS = {"tico19": read_tico19, "ntrex128": read_ntrex128, "mintaka": read_mintaka, "exams": read_exams}


def _gzip(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))  # no timestamp: rebuilds are byte-identical


def _manifest(folder: Path, files: list[str]) -> None:
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n"
                                               for f in sorted(files)), encoding="utf-8")


def evaluated_hashes() -> set[int]:
    """Leakage-guard hashes of every text of every registered task whose data is here."""
    hashes: set[int] = set()
    for task in discover().values():
        try:
            data = task.load()
        except DataUnavailable:
            continue
        hashes.update(text_hashes(list(data.queries["text"]) + list(data.candidates["text"])).tolist())
    return hashes


def _training_texts(record: dict) -> list[str]:
    return [record["question"], record["choices"][record["answer"]]] if "question" in record \
        else list(record["text"].values())


def build(raw: Path, out: Path = TRAIN_DATA) -> dict[str, int]:
    """Write every training source under `out/<source>/`; returns the records (or files) written per source."""
    made = {}
    evaluated = evaluated_hashes()
    for source, reader in READERS.items():
        table = reader(raw)
        kept = table[assign(source, table) == "train"]
        records = exams_records(kept) if source == "exams" else parallel_records(kept)
        records = [r for r in records if not evaluated.intersection(text_hashes(_training_texts(r)).tolist())]
        folder = out / source
        folder.mkdir(parents=True, exist_ok=True)
        _gzip(folder / TRAIN_FILE, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                           for r in records).encode("utf-8"))
        license_file = raw / source / LICENSES[source] if source in LICENSES else out.parent / source / "LICENSE"
        shutil.copyfile(license_file, folder / "LICENSE")  # EXAMS has none upstream: the eval folder's
        _manifest(folder, [TRAIN_FILE])
        made[source] = len(records)
    tatoeba = out / "tatoeba"
    tatoeba.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted((raw / "tatoeba").glob("tatoeba.*-eng.*")):
        _gzip(tatoeba / f"{path.name}.gz", path.read_bytes())
        names.append(f"{path.name}.gz")
    shutil.copyfile(raw / "tatoeba" / "README.laser.md", tatoeba / "README.laser.md")
    _manifest(tatoeba, names)
    made["tatoeba"] = len(names)
    arcd = out / "arcd"
    arcd.mkdir(parents=True, exist_ok=True)
    for name in ("arcd.json.gz", "LICENSE"):
        shutil.copyfile(raw / "arcd" / name, arcd / name)
    _manifest(arcd, ["arcd.json.gz"])
    made["arcd"] = 1
    return made


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tools.ship RAW_DATA_DIR   (the staged shared/data folder)")
    print("\n".join(f"data/train/{source}: {n}" for source, n in build(Path(sys.argv[1])).items()))
