"""A streamed corpus encoded and searched on a real two-node Ray cluster (two `ray start` nodes on this machine)
gives what one process gives: the same vector shards, and the same top k as `exact_search`, ties included."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY

from xbench.models.ray import RayEncoder
from xbench.models.st import load_sentence_transformer
from xbench.models.vectors import VectorShards
from xbench.retrieval.stream import TopK, exact_search
from xbench.tasks.corpus import CorpusView, convert_batches, open_corpus

WORDS = sorted({w for lang in TINY.values() for _, paras in lang for text, _ in paras for w in text.split()})
PASSAGES = 3000
DISTINCT = 400  # passages repeat, so equal scores straddle the top-k cut: the merge must keep the ties
SHARD_ROWS = 500
RAY_ENV = {"RAY_AUTH_MODE": "disabled",  # a ~/.ray/auth_token would make the head alone turn tokens on
           "RAY_USAGE_STATS_ENABLED": "0"}  # no usage reports (Ray Data's would query a Prometheus at exit)


@pytest.mark.parametrize("k", [1, 7, 60])
def test_shard_tops_merged_equal_one_search(k: int) -> None:
    """What search_shards does on the driver: each shard's own top k (ties at its cut kept), merged in any order,
    is the top k of one search over all shards, and of a plain sort."""
    rng = np.random.default_rng(k)
    queries = rng.integers(-2, 3, (15, 4)).astype(np.float32)
    vectors = rng.integers(-2, 3, (500, 4)).astype(np.float32)  # small integers: exact scores, ties everywhere
    edges = [0, 40, 41, 230, 500]
    shards = [(a, vectors[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    merged = TopK(len(queries), k)
    for start, matrix in reversed(shards):
        merged.merge(exact_search(queries, [(start, matrix)], k))
    whole = exact_search(queries, shards, k)
    for order_key in (None, lambda p: -p):
        np.testing.assert_array_equal(merged.result(order_key)[0], whole.result(order_key)[0])
    scores = queries @ vectors.T
    by_sort = [sorted(range(500), key=lambda j: (-row[j], j))[:k] for row in scores.tolist()]
    assert merged.result()[0].tolist() == by_sort
    with pytest.raises(ValueError, match="merging a top 2 of 15 queries into a top"):
        merged.merge(TopK(len(queries), 2))


def _session_pids(sid: int) -> list[int]:
    """Processes of session `sid`: a `ray start` node and everything it spawned (workers keep the session)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def _stop(sessions: list[int]) -> None:
    """End the cluster's processes by id: `ray stop` would end every Ray process on the machine, others' too."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        pids = [p for sid in sessions for p in _session_pids(sid)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait
        while any(_session_pids(sid) for sid in sessions) and time.monotonic() < deadline:
            time.sleep(0.2)


def _start_node(cmd: list[str], env: dict[str, str], attempts: int = 3) -> int:
    """Run `ray start` in a session of its own; returns the session id. A raylet gives its agents (Python
    processes) 15 s to report their ports and dies when they miss it, which a busy machine can make happen, so
    a failed start is cleaned up and tried again."""
    for _ in range(attempts):
        start = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        out, _ = start.communicate(timeout=180)
        if start.returncode == 0:
            return start.pid
        _stop([start.pid])
    pytest.fail(f"{' '.join(cmd[:3])} failed {attempts} times; the last output:\n{out[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node and a worker node, one CPU each, started one after the other; yields the address."""
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, **RAY_ENV}
    # Ray's socket paths must stay under 107 bytes: pytest-xdist's temp folders are too deep for them
    temp = Path(tempfile.mkdtemp(prefix="xray", dir="/tmp"))
    common = ["--num-cpus=1", "--object-store-memory=100000000", "--include-log-monitor=false", f"--temp-dir={temp}"]
    sessions = []
    try:
        sessions.append(_start_node([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
                                     *common], env))
        sessions.append(_start_node([ray_cli, "start", f"--address={address}", *common], env))
        yield address
    finally:
        _stop(sessions)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusView:
    """PASSAGES synthetic passages (DISTINCT texts, repeated) converted to a corpus folder, row groups of 700."""
    import pyarrow as pa

    rng = np.random.default_rng(0)
    distinct = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(DISTINCT)]
    texts = [distinct[i] for i in rng.integers(0, DISTINCT, size=PASSAGES)]
    folder = tmp_path_factory.mktemp("corpus")
    convert_batches([pa.table({"docid": [f"d{i}" for i in range(PASSAGES)], "title": ["t"] * PASSAGES,
                               "text": texts})], folder, "synthetic", row_group=700)
    return open_corpus(folder).view("{title}: {text}")


@pytest.mark.slow  # starts a two-node Ray cluster
def test_two_nodes_fill_and_search_like_one_process(cluster: str, corpus: CorpusView, tiny_st_model: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    import ray.data

    for name, value in RAY_ENV.items():
        monkeypatch.setenv(name, value)
    # the ranges go out once both actors are up, so that the faster start does not take all the (tiny) work
    monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 600)
    encoder = load_sentence_transformer(str(tiny_st_model), pooling=None, device="cpu", batch_size=64)
    fp = encoder.info.fingerprint

    local = VectorShards(tmp_path / "local", fp, corpus.fingerprint, corpus.rows)
    assert local.fill(corpus.batches, lambda t: encoder.encode(t, "doc"), shard_rows=SHARD_ROWS) == PASSAGES
    want = np.concatenate([m for _, m in local.shards()])

    remote = VectorShards(tmp_path / "shared", fp, corpus.fingerprint, corpus.rows)
    remote.shard_rows = SHARD_ROWS
    remote.put(700, want[700:1200])  # already there: only the gaps [0, 700) and [1200, 3000) go to the cluster
    try:
        ray.init(address=cluster, log_to_driver=False)
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(nodes) == 2
        cluster_encoder = RayEncoder(encoder, cluster, actors=2, cache_root=tmp_path / "shared")
        assert cluster_encoder.fill_corpus(corpus, remote, "encoding on Ray") == PASSAGES - 500
        assert set(cluster_encoder.placement) == nodes  # both nodes encoded
        assert sum(cluster_encoder.placement.values()) == PASSAGES - 500
        assert remote.missing() == []
        assert sorted(p.name for p in remote.dir.glob("rows-*.npy"))[:3] == [
            "rows-000000000000-000000000500.npy", "rows-000000000500-000000000700.npy",
            "rows-000000000700-000000001200.npy"]  # gaps cut every SHARD_ROWS from their own start
        np.testing.assert_allclose(np.concatenate([m for _, m in remote.shards()]), want, atol=1e-6)

        queries = encoder.encode(next(iter(corpus.batches(20)))[1] + ["who barks at night", "mars is red"], "query")
        k = 10
        deadline = time.monotonic() + 60  # the encoding actors give their CPU back, then both nodes can search
        while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        got = cluster_encoder.search_shards(queries, remote, k)
        assert set(cluster_encoder.placement) == nodes  # both nodes searched
        assert sum(cluster_encoder.placement.values()) == PASSAGES
    finally:
        ray.shutdown()
    expected = exact_search(queries, remote.shards(), k)
    for order_key in (None, lambda p: -p):  # ties broken either way pick the same candidates
        got_positions, got_scores = got.result(order_key)
        want_positions, want_scores = expected.result(order_key)
        np.testing.assert_array_equal(got_positions, want_positions)
        np.testing.assert_array_equal(got_scores, want_scores)
    best = np.sort(queries @ want.T, axis=1)[:, -(k + 1):]  # the k+1 best, ascending
    assert (best[:, 0] == best[:, 1]).any()  # some query has ties at the cut, so the merge had to keep them
