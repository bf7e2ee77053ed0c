"""Reports: run summaries, timeline plots."""
