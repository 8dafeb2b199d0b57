"""Stage 5, results: the typed, versioned results file (`schema`), its storage (`store`), checks that recompute
every aggregate (`validate`), the leaderboard intake (`submit`) and the tidy table of the Python API (`frame`)."""
