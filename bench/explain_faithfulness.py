"""Benchmark (not a test): are the explanations faithful, and what do they cost?

Faithfulness, on BANKING77 test texts (CC BY 4.0, Casanueva et al. 2020): for each text with at least 4 words,
delete its top 3 explained words, and separately 3 random words of the same text (seeded), and score both
with the served model. The explanation is faithful for that text when deleting its words lowers the predicted
label's probability more than deleting the random ones. Cost: `classify([text])` against
`classify([text], explain=True)` (what the API runs), interleaved, one thread.

    .venv/bin/python bench/explain_faithfulness.py [--model artifacts/served/model] [--texts 500]
Results: bench/results/<date>-explain-faithfulness.md (+ .json), and printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions")]
DATA = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"


def delete_words(text: str, words: list[str]) -> str:
    for word in words:
        text = text.replace(word, " ", 1)
    return " ".join(text.split())


def main() -> int:
    from categorizer.engine import Classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    classifier = Classifier.from_path(args.model, threads=1)
    rng = random.Random(args.seed)
    with DATA.open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    rng.shuffle(texts)
    texts = [t for t in texts if len(t.split()) >= 4][: args.texts]
    loads = [os.getloadavg()[0]]

    wins, margins = 0, []
    for text in texts:
        explanation = classifier.explain(text)
        label = classifier.labels.index(explanation.label)
        top = [span.text for span in explanation.spans[:3]]
        candidates = [w for w in text.split() if not any(w.find(t) >= 0 or t.find(w) >= 0 for t in top)] or \
            text.split()
        chosen = rng.sample(candidates, min(len(top), len(candidates)))
        _, without_top, without_random = classifier.probabilities(
            [text, delete_words(text, top) or ".", delete_words(text, chosen) or "."])[:, label]
        wins += int(without_top < without_random)
        margins.append(float(without_random - without_top))
    loads.append(os.getloadavg()[0])

    sample = texts[:200]
    timings: dict[str, list[float]] = {"classify": [], "classify + explain": []}
    for text in sample[:20]:
        classifier.classify([text])
        classifier.classify([text], explain=True)
    for _ in range(3):
        for text in sample:
            start = time.perf_counter_ns()
            classifier.classify([text])
            timings["classify"].append((time.perf_counter_ns() - start) / 1e6)
            start = time.perf_counter_ns()
            classifier.classify([text], explain=True)  # what the API and the CLI run
            timings["classify + explain"].append((time.perf_counter_ns() - start) / 1e6)
    loads.append(os.getloadavg()[0])
    p50 = {name: statistics.median(values) for name, values in timings.items()}
    share = wins / len(texts)
    ratio = p50["classify + explain"] / p50["classify"]
    now = datetime.now(UTC)
    report = f"""# Explanation faithfulness and cost ({now:%Y-%m-%d %H:%M} UTC)

Command: `.venv/bin/python bench/explain_faithfulness.py --model {args.model} --texts {args.texts} --seed {args.seed}`

Model `{classifier.version}`; BANKING77 test texts with at least 4 words (CC BY 4.0), {len(texts)} texts;
1-minute load average {min(loads):.1f}-{max(loads):.1f} on 2 shared vCPUs.

- Deleting the top 3 explained words lowered the predicted label's probability more than deleting 3 random
  words of the same text in **{share:.1%}** of texts ({wins} of {len(texts)}; goal >= 85 %). Median margin
  (random minus explained probability) {statistics.median(margins):.3f}.
- Cost, one thread, {len(sample)} texts x 3 interleaved rounds: `classify` p50 {p50['classify']:.2f} ms,
  `classify(explain=True)` p50 {p50['classify + explain']:.2f} ms: **{ratio:.1f}x**
  (goal <= 5x). With `explain` off the API runs no explanation code.
"""
    out = ROOT / "bench" / "results" / f"{now:%Y-%m-%d-%H%M}-explain-faithfulness.md"
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"texts": len(texts), "wins": wins, "share": share,
                                                    "median_margin": statistics.median(margins), "p50_ms": p50,
                                                    "load": loads, "model": classifier.version}, indent=1),
                                        encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
