"""Stage 2, retrieval: the exact ranking core with its tie policy (`exact`), FAISS top-k for large pools (`ann`), and
ragged per-query arrays (`ragged`). Models reach it only through the protocols in `protocols`."""
