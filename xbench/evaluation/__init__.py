"""Stage 4, evaluation: one slice ranked and measured (`kernel`), one task run end to end with its up-to-date
check (`run`)."""
