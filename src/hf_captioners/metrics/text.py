"""BLEU-4 and ROUGE-L through the standard packages (sacrebleu, rouge_score); both run offline."""

from __future__ import annotations

from .cider.cider_d import validate_inputs

__all__ = ["bleu_rouge"]


def bleu_rouge(predictions: list[str], references: list[list[str]]) -> dict:
    """{"bleu_4": corpus sacreBLEU (13a tokenization, 0-100), "rouge_l": mean over examples of the best
    ROUGE-L F1 against any reference (0-100), "rouge_l_scores": per example}.

    Note: these are the packages' standard definitions, not pycocoevalcap's BLEU / ROUGE-L (which uses its own
    tokenization and an F-measure with beta=1.2), so they are not comparable with numbers in COCO papers.
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    predictions, references = validate_inputs(predictions, references)
    if not predictions:
        return {"bleu_4": 0.0, "rouge_l": 0.0, "rouge_l_scores": []}
    width = max(map(len, references))
    ref_streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    bleu = sacrebleu.corpus_bleu(predictions, ref_streams).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rouge = [100.0 * max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs)
             for pred, refs in zip(predictions, references)]
    return {"bleu_4": float(bleu), "rouge_l": sum(rouge) / len(rouge), "rouge_l_scores": rouge}
