"""Build-time scripts that made the shipped data from the raw sources (run from a source checkout; not in the wheel):
`python -m tools.sources RAW` writes the evaluation halves, `python -m tools.ship RAW` the training halves."""
