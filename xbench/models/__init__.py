"""Stage 2, models: encoders behind one retriever protocol (`base`), the embedding cache, and the registry `--model`
resolves in (`registry`). Importing the package registers the built-in models (`builtins`)."""

from xbench.models import builtins  # noqa: F401  (registers the built-in models)
