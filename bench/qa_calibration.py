"""QA calibration: every clip of the corpus through clip QA on both tiers, with each score's margin.

A margin is how far a score sits inside its limit, as a fraction of the limit (negative: it fails).
Prints one row per clip and tier and writes bench/results/qa_calibration.json.

    .venv/bin/python bench/qa_calibration.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.videokit.sku_video import qa_corpus
from tests.videokit.sku_video.clipfactory import FPS, HEIGHT, WIDTH
from videokit.sku_video.qa import QAThresholds, judge_clip, measure_clip

TIERS = {"bulk": QAThresholds.bulk(), "hero": QAThresholds.hero()}
# score -> (threshold field, whether the score must stay below it)
LIMITS = {
    "black_frame_ratio": ("max_black_frame_ratio", True),
    "longest_frozen_s": ("max_frozen_s", True),
    "motion_mean": ("min_motion", False),
    "flicker": ("max_flicker", True),
    "sharpness_ratio": ("min_sharpness_ratio", False),
    "loop_seam_ratio": ("max_loop_seam_ratio", True),
    "brand_delta_e": ("max_brand_delta_e", True),
    "product_psnr": ("min_product_psnr_clip", False),
}


def margin(value: float, limit: float, upper: bool) -> float:
    scale = max(abs(limit), 1e-9)
    return (limit - value) / scale if upper else (value - limit) / scale


def main() -> int:
    rows, wrong = [], 0
    started = time.perf_counter()
    for clip in qa_corpus.corpus():
        sample = clip.build()
        scores = measure_clip(sample.data, **sample.references)
        for tier, thresholds in TIERS.items():
            outcomes = judge_clip(scores, width=WIDTH, height=HEIGHT, fps=FPS, thresholds=thresholds)
            failed = [o.name for o in outcomes if not o.passed]
            expected = [] if clip.fails is None else [clip.fails]
            correct = failed == expected
            wrong += not correct
            margins = {
                name: round(margin(value, getattr(thresholds, field), upper), 3)
                for name, (field, upper) in LIMITS.items()
                if (value := getattr(scores, name)) is not None
            }
            rows.append({
                "clip": clip.name, "tier": tier, "expected_failure": clip.fails, "failed": failed,
                "correct": correct,
                "scores": {name: round(float(getattr(scores, name)), 4) for name in margins},
                "margins": margins,
            })
            tight = min(margins, key=margins.get)
            print(f"{clip.name:38s} {tier:4s} {'ok ' if correct else 'BAD'} failed={','.join(failed) or '-':24s} "
                  f"motion {scores.motion_mean:6.3f} seam {scores.loop_seam_ratio:5.2f} "
                  f"flicker {scores.flicker:5.2f} sharp {scores.sharpness_ratio:4.2f} "
                  f"psnr {scores.product_psnr or 0:5.1f} ΔE {scores.brand_delta_e:4.1f}  "
                  f"tightest {tight} {margins[tight]:+.2f}")
    good = [r for r in rows if r["expected_failure"] is None]
    defects = [r for r in rows if r["expected_failure"] is not None]
    summary = {
        "clips": len(rows) // len(TIERS),
        "good_passing": sum(r["correct"] for r in good), "good_total": len(good),
        "defects_failing_their_check": sum(r["correct"] for r in defects), "defects_total": len(defects),
        "smallest_good_margin": {
            name: min(r["margins"][name] for r in good if name in r["margins"]) for name in LIMITS
        },
        "thresholds": {tier: {f: getattr(t, LIMITS[n][0]) for n, (f, _) in LIMITS.items()} for tier, t in TIERS.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = ROOT / "bench" / "results" / "qa_calibration.json"
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
    print(f"good clips passing: {summary['good_passing']}/{summary['good_total']}; "
          f"defects failing only their check: {summary['defects_failing_their_check']}/{summary['defects_total']}")
    print("smallest margin of a good clip per score:", summary["smallest_good_margin"])
    print(f"wrote {out.relative_to(ROOT)} in {summary['seconds']} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
