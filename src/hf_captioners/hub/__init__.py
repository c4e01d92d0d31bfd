"""The Hub: stage and push a captioner folder (`push.py`) with a model card rendered from `model_cards/` (`cards.py`)."""
