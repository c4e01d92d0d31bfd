"""CIDEr-D as an `evaluate` metric: `evaluate.load("path/to/metrics/cider")`, offline, no Java.

Identical to pycocoevalcap's CIDEr-D (PTB tokenization, n=4, sigma=6, document frequencies over the
evaluated references) — see `cider_d.py` and `ptb_tokenizer.py` beside this file, which `evaluate`
copies together with it.
"""

import datasets
import evaluate

from .cider_d import CiderD, validate_inputs
from .ptb_tokenizer import PTBTokenizer

_CITATION = """\
@inproceedings{vedantam2015cider,
  title={CIDEr: Consensus-based Image Description Evaluation},
  author={Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={CVPR}, year={2015}
}
"""

_DESCRIPTION = """\
CIDEr-D measures consensus between a candidate caption and a set of reference captions with tf-idf weighted
n-grams (n=1..4), a Gaussian length penalty and clipped counts. Document frequencies come from the references
of the evaluated set, so the score of an example depends on the whole set (one image alone scores 0).
This implementation reproduces pycocoevalcap (the COCO caption evaluation code) exactly, including its
Stanford PTB tokenization, without Java.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of candidate captions (str), one per image.
    references: list of lists of reference captions (str), one non-empty list per image.
    tokenize: apply the PTB tokenization pycocoevalcap uses (default True); False if the text is already
        tokenized (tokens separated by whitespace).
    n: maximum n-gram order (default 4; pycocoevalcap itself always counts 1..4-grams). sigma: length-penalty
        width (default 6.0).
Returns:
    cider_d: the corpus score (mean of the per-example scores; COCO papers report it x100).
    scores: the per-example scores.
Examples:
    >>> cider = evaluate.load("src/hf_captioners/metrics/cider")
    >>> cider.compute(predictions=["a dog runs"], references=[["a dog is running", "dog running"]])
    {'cider_d': 0.0, 'scores': [0.0]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Cider(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
            reference_urls=["https://github.com/tylin/coco-caption", "https://arxiv.org/abs/1411.5726"],
        )

    def _compute(self, predictions, references, tokenize=True, n=4, sigma=6.0):
        predictions, references = validate_inputs(list(predictions), [list(r) for r in references])
        word_ids = PTBTokenizer().word_ids if tokenize else None
        score, scores = CiderD(n=n, sigma=sigma).compute_captions(predictions, references, word_ids)
        return {"cider_d": score, "scores": scores.tolist()}
