"""Re-captioning webdataset shards: the local engine (`engine.py`), the Ray engine (`ray_engine.py`) and the model
adapters that split each captioner into worker-side preprocessing and batched generation (`adapters.py`)."""
