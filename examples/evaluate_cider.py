"""Evaluate a captioner (Altogether or antarctic folder) on an eval set: CIDEr-D (pycocoevalcap-exact, no Java),
BLEU-4, ROUGE-L, CLIPScore (with --clip), alt-text retention and caption lengths.

    python examples/evaluate_cider.py --model runs/altogether --toyworld toy --split eval --out results/alt
    python examples/evaluate_cider.py --model runs/antarctic --coco-json coco/dataset_coco.json \\
        --image-root coco/images --split test --references short --out results/ant --no-alt-text
    python examples/evaluate_cider.py --baseline alt_text --ft-json Altogether-FT/eval.json --out results/copy

Same options as `hf-captioners evaluate` (this script is that command).
"""

import sys

from hf_captioners.commands import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
