"""Training: the one Accelerator loop and optimizer rule of the example scripts (`loop.py`) and LayerNorm tuning
through PEFT (`ln_tuning.py`)."""
