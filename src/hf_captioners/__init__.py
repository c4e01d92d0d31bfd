"""hf-captioners: Altogether and antarctic-captions as Transformers-native captioners."""

__version__ = "0.1.0"

__all__ = ["__version__"]
