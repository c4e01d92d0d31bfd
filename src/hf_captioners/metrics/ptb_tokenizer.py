"""Java-free PTB tokenization as pycocoevalcap runs it (the implementation lives beside the CIDEr module,
so that `evaluate.load` of that folder can copy it)."""

from .cider.ptb_tokenizer import PUNCTUATIONS, PTBTokenizer, ptb_tokenize, tokenize_caption

__all__ = ["PUNCTUATIONS", "PTBTokenizer", "ptb_tokenize", "tokenize_caption"]
