"""A deterministic stand-in captioner for the re-captioning engine's tests (also run as a script by the kill test)."""

from __future__ import annotations

import sys
import time

import numpy as np


class MeanColour:
    """Picklable preprocessing: the image's mean colour and the joined alt-texts."""

    def __call__(self, image, alt_texts):
        return {"mean": np.asarray(image, dtype=np.float64).mean(axis=(0, 1)).round(1).tolist(), "alt": "; ".join(alt_texts)}


class FakeCaptioner:
    output_key = "fake"

    def __init__(self, delay: float = 0.0):
        self.preprocess = MeanColour()
        self.delay = delay
        self.batches: list[int] = []

    def collate(self, features):
        return features

    def generate(self, batch):
        self.batches.append(len(batch))
        time.sleep(self.delay)
        return [f"{f['alt']} @ {f['mean']}" for f in batch]


class PickyCollateCaptioner(FakeCaptioner):
    """Collation that breaks on one record's features (alt-text "poison"), as a ragged tensor would."""

    def collate(self, features):
        if any(f["alt"] == "poison" for f in features):
            raise ValueError("cannot stack a poisoned feature")
        return features


if __name__ == "__main__":
    from hf_captioners.data.shards import expand_shard_specs
    from hf_captioners.recaption.engine import caption_shards

    pattern, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    summary = caption_shards(FakeCaptioner(delay), expand_shard_specs(pattern), out, batch_size=4, num_workers=1, progress=False)
    print(summary.line())
