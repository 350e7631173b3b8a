"""Experiment (not part of the build): distil MiniLM-L6 into 4 of its layers, then build a recipe on the student.

A lever of issue 18 (docs/model.md, "Speed levers"): four layers (0, 2, 4, 5) run in about 0.75x the time of
six, but dropping them without training loses ~1 point of BANKING77 accuracy. Here the student learns the
teacher's pooled sentence embedding (cosine) and each kept layer's hidden states (MSE) on the training texts
only, with 10 % of word pieces masked on half of the batches; then the recipe is built on it as usual.

    .venv/bin/python bench/distill_experiment.py distil --data ../shared/data/banking77 --out /tmp/student
    .venv/bin/python bench/distill_experiment.py build --student /tmp/student --data ../shared/data/banking77 \\
        --out /tmp/student-model --recipe full
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

KEEP = (0, 2, 4, 5)


def pooled(output, mask):
    import torch

    summed = (output.last_hidden_state * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(summed, dim=1)


def distil(data: Path, out: Path, epochs: int) -> dict:
    import torch
    from torch import nn

    from model_build.encoder import load_encoder
    from model_build.train import tokenize

    torch.manual_seed(0)
    rng = random.Random(0)
    with (data / "train.csv").open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    teacher = load_encoder()
    student = copy.deepcopy(teacher)
    student.encoder.layer = nn.ModuleList([student.encoder.layer[i] for i in KEEP])
    student.config.num_hidden_layers = len(KEEP)
    ids = tokenize(texts, max_tokens=128)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    buckets = [order[start:start + 32] for start in range(0, len(order), 32)]  # similar lengths: little padding
    total = epochs * len(buckets)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / total))
    started, losses = time.time(), []
    for _ in range(epochs):
        rng.shuffle(buckets)
        student.train()
        running = 0.0
        for bucket in buckets:
            width = max(len(ids[i]) for i in bucket)
            x = torch.zeros(len(bucket), width, dtype=torch.long)
            mask = torch.zeros_like(x)
            for row, i in enumerate(bucket):
                x[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            if rng.random() < 0.5:  # [MASK] 10 % of the word pieces: texts the student has not seen verbatim
                drop = (torch.rand(x.shape) < 0.1) & (mask == 1) & (x != 101) & (x != 102)
                x = torch.where(drop, torch.full_like(x, 103), x)
            kwargs = {"input_ids": x, "attention_mask": mask, "token_type_ids": torch.zeros_like(x),
                      "output_hidden_states": True}
            with torch.no_grad():
                taught = teacher(**kwargs)
            learnt = student(**kwargs)
            weights = mask.unsqueeze(-1).float()
            layers = sum(((learnt.hidden_states[i + 1] - taught.hidden_states[k + 1]) ** 2 * weights).sum()
                         / weights.sum() / 384 for i, k in enumerate(KEEP))
            loss = (1 - (pooled(learnt, mask) * pooled(taught, mask)).sum(1)).mean() * 10 + layers
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
        losses.append(round(running / len(buckets), 4))
        print(f"epoch {len(losses)} loss {losses[-1]} {time.time() - started:.0f} s", flush=True)
    student.eval()
    out.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(out)
    return {"texts": len(texts), "epochs": epochs, "losses": losses, "seconds": round(time.time() - started)}


def build(student: Path, data: Path, label_column: str, out: Path, recipe: str) -> dict:
    import model_build.pipeline as pipeline
    import model_build.train as train
    from model_build.encoder import SentenceClassifier, load_encoder
    from model_build.recipe import RECIPES

    def make(num_labels: int) -> SentenceClassifier:
        return SentenceClassifier(load_encoder(student), num_labels)

    pipeline.build_classifier = make  # the one seam: every step that loads the encoder gets the student
    train.build_classifier = make
    result = pipeline.build(pipeline.BuildRequest(
        train_files=[data / "train.csv"], test_file=data / "test.csv", bundle_dir=out, recipe=RECIPES[recipe],
        label_column=label_column, progress=False))
    return {"student": str(student), "recipe": recipe, "accuracy": result.metrics["accuracy"],
            "macro_f1": result.metrics["macro_f1"], "seconds": round(result.seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("distil")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p = sub.add_parser("build")
    p.add_argument("--student", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--label-column", default="category")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--recipe", default="full")
    args = parser.parse_args()
    if args.command == "distil":
        print(json.dumps(distil(args.data, args.out, args.epochs)))
    else:
        print(json.dumps(build(args.student, args.data, args.label_column, args.out, args.recipe)))


if __name__ == "__main__":
    main()
