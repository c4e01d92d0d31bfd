"""CIDEr-D: the `evaluate` module lives in `cider.py` (load the folder with `evaluate.load(path)`); the
scorer and the tokenizer it uses are plain modules so they import without `evaluate`."""

from .cider_d import CiderD, cider_d_from_tokens, validate_inputs
from .ptb_tokenizer import PTBTokenizer, ptb_tokenize

__all__ = ["CiderD", "PTBTokenizer", "cider_d_from_tokens", "ptb_tokenize", "validate_inputs"]
