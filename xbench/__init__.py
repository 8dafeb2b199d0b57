"""xbench: zero-shot cross-lingual retrieval benchmark (LAReQA-style pooled retrieval, bias, robustness)."""

__version__ = "0.1.0"
