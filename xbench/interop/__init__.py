"""Interop: xbench tasks exported for other harnesses (`mteb`)."""
