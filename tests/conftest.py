"""Shared fixtures (defined in helpers.py beside the helpers the tests import): a tiny LAReQA-format task made here,
a tiny real sentence-transformers model, and results and report folders built from them."""

from helpers import report_dirs, tiny_results, tiny_st_model, tiny_tasks

__all__ = ["report_dirs", "tiny_results", "tiny_st_model", "tiny_tasks"]
