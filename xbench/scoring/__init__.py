"""Stage 3, scoring: per-query metrics as pure vectorised functions (`metrics`), language bias (`bias`), and the
averaging from queries to slices, languages and the macro score (`aggregate`)."""
