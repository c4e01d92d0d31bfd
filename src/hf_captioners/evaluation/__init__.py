"""Evaluation: caption an eval set with any captioner (or a baseline) and score it (`runner.py`; metrics in `metrics/`)."""
