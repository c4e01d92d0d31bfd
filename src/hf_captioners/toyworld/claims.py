"""The papers' claims measured in the toy world, per image, and the rules that decide them.

Every measure is a list over the test images (None where an image does not count), so one function
(`metrics.intervals`) puts a bootstrap interval on each, for one seed or the mean of several. The rules
were fixed before the runs they decide (docs/protocol.md); a claim that fails is reported as not shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from hf_captioners.metrics.intervals import Estimate, bootstrap_difference, bootstrap_mean

__all__ = [
    "CLAIM_RULES", "DOWNSTREAM_METRICS", "SYSTEM_METRICS", "check_claims", "claims_text", "errors_corrected", "held_out_mentions",
    "summarise",
]

# (label, key, scale for display): the measures every system row reports.
SYSTEM_METRICS = (
    ("CIDEr-D", "cider_d", 100.0),
    ("name retention (%)", "name_retention", 100.0),
    ("errors corrected (%)", "errors_corrected", 100.0),
    ("CLIPScore, judge CLIP", "clip_score", 1.0),
    ("held-out concept named, images showing it (%)", "held_out_recall", 100.0),
    ("held-out concept named, images not showing it (%)", "held_out_false_positive", 100.0),
)
DOWNSTREAM_METRICS = (
    ("zero-shot colour+shape (%)", "zero_shot_object_acc", 100.0),
    ("zero-shot colour (%)", "zero_shot_color_acc", 100.0),
    ("zero-shot shape (%)", "zero_shot_shape_acc", 100.0),
    ("zero-shot held-out concept (%)", "zero_shot_held_out_acc", 100.0),
    ("image→text R@1 (%)", "recall_at_1", 100.0),
    ("text→image R@1 (%)", "text_recall_at_1", 100.0),
)
NAMES_KEPT = 0.80
CUSTOM_RECALL, PLAIN_RECALL, CUSTOM_FALSE_POSITIVE = 0.50, 0.05, 0.10
CLAIM_RULES = {
    "cider": "Altogether's CIDEr-D is above both the copied alt-text's and image-only ClipCap's (the 95% intervals "
             "of both paired differences lie above 0)",
    "names": f"Altogether keeps at least {NAMES_KEPT:.0%} of the names that only the alt-text has",
    "corrects": "Altogether corrects wrong alt-text attributes about as often as image-only ClipCap (the 95% "
                "interval of Altogether − ClipCap does not lie entirely below 0) while keeping at least "
                f"{NAMES_KEPT:.0%} of the names on those images",
    "antarctic": f"antarctic names the held-out concept on at least {CUSTOM_RECALL:.0%} of the images showing it "
                 f"with the custom cache entry, at most {PLAIN_RECALL:.0%} without, and on at most "
                 f"{CUSTOM_FALSE_POSITIVE:.0%} of the images not showing it with the entry",
    "downstream": "a CLIP trained on Altogether's re-captions beats the same CLIP trained on the raw alt-texts "
                  "(the 95% intervals of the test-split differences in zero-shot colour+shape accuracy and in "
                  "image→text R@1 both lie above 0)",
}


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text.lower()) is not None


def errors_corrected(captions: Sequence[str | None], alt_errors: Sequence[str], scenes: Sequence[str]) -> list:
    """Per image whose alt-text states a wrong colour/shape: whether the caption states the object's true
    attributes and not the alt-text's wrong ones (None for the other images)."""
    out: list = []
    for caption, error_json, scene_json in zip(captions, alt_errors, scenes, strict=True):
        if not error_json:
            out.append(None)
            continue
        caption = caption or ""
        error, scene = json.loads(error_json), json.loads(scene_json)
        obj = scene["objects"][error["object"]]
        right = f"{obj['color']} {obj['shape']}"
        wrong_obj = dict(obj, **{error["field"]: error["wrong"]})
        wrong = f"{wrong_obj['color']} {wrong_obj['shape']}"
        wrong_is_true_elsewhere = any(f"{o['color']} {o['shape']}" == wrong for o in scene["objects"])
        out.append(_contains(caption, right) and (wrong_is_true_elsewhere or not _contains(caption, wrong)))
    return out


def held_out_mentions(captions: Sequence[str | None], scenes: Sequence[str], concept: str) -> tuple[list, list]:
    """(per image showing the concept: is it named, per image not showing it: is it named)."""
    shows = [any(concept in (o["color"], o["shape"]) for o in json.loads(s)["objects"]) for s in scenes]
    hits = [_contains(c or "", concept) for c in captions]
    return ([h if s else None for h, s in zip(hits, shows)], [None if s else h for h, s in zip(hits, shows)])


def summarise(runs: Sequence[dict], keys: Sequence[str], metrics: Sequence[str]) -> dict:
    """{key: {metric: Estimate}} over runs (one {key: {metric: per-image list}} per seed)."""
    return {key: {m: bootstrap_mean([run[key][m] for run in runs]) for m in metrics if m in runs[0][key]}
            for key in keys if key in runs[0]}


def _masked(values: list, mask: list) -> list:
    return [v if m is not None else None for v, m in zip(values, mask)]


def _diff(runs, a: str, b: str, metric: str) -> Estimate:
    return bootstrap_difference([r[a][metric] for r in runs], [r[b][metric] for r in runs])


def check_claims(runs: Sequence[dict], downstream: Sequence[dict] | None = None) -> list[dict]:
    """Each claim decided by its rule in `CLAIM_RULES`, from per-image results of one or more seeds.

    `runs`: per seed, {system: {metric: per-image list}}; `downstream`: per seed, {condition: {metric: list}}
    on the test split (None: the experiment did not run, and its claim is "not run")."""
    est = summarise(runs, ("altogether", "copy", "clipcap", "antarctic_sample", "antarctic_custom", "antarctic_beam"),
                    [m for _, m, _ in SYSTEM_METRICS])
    vs_copy, vs_clipcap = _diff(runs, "altogether", "copy", "cider_d"), _diff(runs, "altogether", "clipcap", "cider_d")
    names = est["altogether"]["name_retention"]
    fixes = _diff(runs, "altogether", "clipcap", "errors_corrected")
    names_on_errors = bootstrap_mean([_masked(r["altogether"]["name_retention"], r["altogether"]["errors_corrected"])
                                      for r in runs])
    with_entry, without = est["antarctic_custom"]["held_out_recall"], est["antarctic_sample"]["held_out_recall"]
    false_positive = est["antarctic_custom"]["held_out_false_positive"]

    def ok(estimate: Estimate, test) -> bool:
        return estimate["value"] is not None and bool(test(estimate))

    claims = [
        {"id": "cider", "shown": ok(vs_copy, lambda e: e["low"] > 0) and ok(vs_clipcap, lambda e: e["low"] > 0),
         "evidence": f"Altogether − copy {vs_copy.text(100)}, Altogether − ClipCap {vs_clipcap.text(100)} CIDEr-D"},
        {"id": "names", "shown": ok(names, lambda e: e["value"] >= NAMES_KEPT),
         "evidence": f"{names.text(100, unit='%')} (ClipCap {est['clipcap']['name_retention'].text(100, unit='%')})"},
        {"id": "corrects",
         "shown": ok(fixes, lambda e: e["high"] >= 0) and ok(names_on_errors, lambda e: e["value"] >= NAMES_KEPT),
         "evidence": f"Altogether {est['altogether']['errors_corrected'].text(100, unit='%')} vs ClipCap "
                     f"{est['clipcap']['errors_corrected'].text(100, unit='%')}, difference {fixes.text(100)} points; "
                     f"names kept on those images {names_on_errors.text(100, unit='%')}; copy "
                     f"{est['copy']['errors_corrected'].text(100, unit='%')}"},
        {"id": "antarctic",
         "shown": ok(with_entry, lambda e: e["value"] >= CUSTOM_RECALL) and ok(without, lambda e: e["value"] <= PLAIN_RECALL)
         and ok(false_positive, lambda e: e["value"] <= CUSTOM_FALSE_POSITIVE),
         "evidence": f"with the entry {with_entry.text(100, unit='%')}, without {without.text(100, unit='%')} "
                     f"(beam search without: {est['antarctic_beam']['held_out_recall'].text(100, unit='%')}); "
                     f"named on images not showing it, with the entry: {false_positive.text(100, unit='%')}"},
    ]
    if downstream:
        acc = _diff(downstream, "altogether", "alt_text", "zero_shot_object_acc")
        r1 = _diff(downstream, "altogether", "alt_text", "recall_at_1")
        claims.append({"id": "downstream", "shown": ok(acc, lambda e: e["low"] > 0) and ok(r1, lambda e: e["low"] > 0),
                       "evidence": f"re-captions − alt-texts: zero-shot colour+shape {acc.text(100)} points, "
                                   f"image→text R@1 {r1.text(100)} points"})
    else:
        claims.append({"id": "downstream", "shown": None, "evidence": "not run (the full demo runs it, not --fast)"})
    for claim in claims:
        claim["claim"] = CLAIM_RULES[claim["id"]]
    return claims


def claims_text(claims: Sequence[dict]) -> str:
    def verdict(shown):
        return "not run" if shown is None else ("shown" if shown else "**not shown**")

    return "\n".join(f"- {verdict(c['shown'])}: {c['claim']}: {c['evidence']}" for c in claims)
