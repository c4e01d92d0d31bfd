"""`hf-captioners serve`: a local Gradio page comparing the loaded captioners (needs the `serve` extra)."""
