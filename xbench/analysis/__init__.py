"""Stage 6, analysis: the static leaderboard (`report`, `plots`, `templates/`), paired significance tests and tiers
(`significance`, `compare`), domain robustness (`robustness`) and seed statistics (`seeds`)."""
