"""Stage 1, tasks: typed YAML specs (`spec`), the registry that finds them (`registry`), loaders that turn a spec and
its verified data into `TaskData`, the mono / cross / multi slices (`settings`), and the train/eval partition and
leakage guard that keep evaluation zero-shot. Specs (`*.yaml`) and data (`xbench/data`) ship inside the package."""
