"""Issue 18's lever "prune the embedding table to the vocabulary that is used": what it saves and what it costs.

For each kept set, a real bundle is written (the served bundle with its model.onnx pruned and the manifest's
sha256 updated) and loaded by the engine like any other:
- the word-embedding table (uint8, 30,522 x 384) keeps only the rows of the kept word pieces: those the
  training texts use, the special tokens, and optionally every id below N (BERT's vocabulary lists common
  pieces first);
- a Gather in front of the embedding maps every other id to [UNK]'s row; the n-gram head still reads the
  original ids, so the tokenizer is unchanged.
Reported: model.onnx and its gzip size (what the cold start downloads and inflates), the BANKING77 test
accuracy and the labels that change against the unpruned model (each text alone, as served). The kept set is
chosen from the training file only.

    .venv/bin/python bench/embedding_prune.py [--model artifacts/served/model] [--keep-below 0 10000 20000]
Results: bench/results/<date>-embedding-prune.md. Data: BANKING77 (Casanueva et al. 2020, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from report_file import write_report

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77"
WORD_EMBEDDINGS = "sentence_encoder.encoder.embeddings.word_embeddings.weight_quantized"
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def pruned_model(model: onnx.ModelProto, kept: list[int], unknown: int) -> onnx.ModelProto:
    """A copy of `model` whose word-embedding table holds only the `kept` ids' rows (others read `unknown`'s)."""
    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    graph = pruned.graph
    table_init = next(init for init in graph.initializer if init.name == WORD_EMBEDDINGS)
    table = numpy_helper.to_array(table_init)
    position = {old: new for new, old in enumerate(kept)}
    remap = np.array([position.get(i, position[unknown]) for i in range(table.shape[0])], dtype=np.int32)
    table_init.CopyFrom(numpy_helper.from_array(table[kept], WORD_EMBEDDINGS))
    graph.initializer.append(numpy_helper.from_array(remap, "word_piece_remap"))
    embedding = next(node for node in graph.node if node.op_type == "QEmbedLayerNormalization")
    gather = helper.make_node("Gather", ["word_piece_remap", embedding.input[0]], ["input_ids_kept"],
                              name="word_piece_remap_gather")
    embedding.input[0] = "input_ids_kept"
    nodes = list(graph.node)
    at = nodes.index(embedding)
    graph.ClearField("node")
    graph.node.extend([*nodes[:at], gather, *nodes[at:]])
    return pruned


def write_bundle(source: Path, target: Path, model: onnx.ModelProto) -> Path:
    from categorizer.engine.bundle import sha256_file

    shutil.copytree(source, target)
    onnx.save(model, target / "model.onnx")
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["model.onnx"] = sha256_file(target / "model.onnx")
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "served" / "model")
    parser.add_argument("--keep-below", type=int, nargs="+", default=[0, 10000, 20000],
                        help="also keep every id below N (0: the training texts' pieces only)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "functions"))
    from categorizer.engine import Classifier, load_bundle

    baseline = Classifier(load_bundle(args.model), threads=1)
    tokenizer = baseline._tokenizer  # the bundle's tokenizer, as the engine configures it
    train, test = _rows("train.csv"), _rows("test.csv")
    texts, gold = [r["text"] for r in test], [r["category"] for r in test]
    used = {piece for row in train for piece in tokenizer.encode(row["text"]).ids}
    used |= {tokenizer.token_to_id(token) for token in SPECIAL}
    unknown = tokenizer.token_to_id("[UNK]")
    labels = list(baseline.labels)
    reference = baseline.probabilities(texts).argmax(1)
    model = onnx.load(str(args.model / "model.onnx"))

    def sizes(path: Path) -> tuple[float, float]:
        data = path.read_bytes()
        return len(data) / 1e6, len(gzip.compress(data, 6)) / 1e6

    lines = ["| kept word pieces | model.onnx MB | gzip MB | test texts with a dropped piece | accuracy | "
             "labels changed |", "|---|---:|---:|---:|---:|---:|"]
    size, packed = sizes(args.model / "model.onnx")
    accuracy = np.mean([labels[i] == y for i, y in zip(reference, gold, strict=True)])
    lines.append(f"| all 30,522 (served) | {size:.2f} | {packed:.2f} | 0 | {accuracy:.2%} | - |")
    with tempfile.TemporaryDirectory(prefix="pruned-") as tmp:
        for below in args.keep_below:
            kept = sorted(used | set(range(below)))
            bundle = write_bundle(args.model, Path(tmp) / f"below-{below}", pruned_model(model, kept, unknown))
            predicted = Classifier(load_bundle(bundle), threads=1).probabilities(texts).argmax(1)
            kept_set = set(kept)
            dropped = sum(any(i not in kept_set for i in tokenizer.encode(t).ids) for t in texts)
            size, packed = sizes(bundle / "model.onnx")
            accuracy = np.mean([labels[i] == y for i, y in zip(predicted, gold, strict=True)])
            what = "the training texts' pieces + special tokens" + (f" + every id below {below:,}" if below else "")
            lines.append(f"| {len(kept):,} ({what}) | {size:.2f} | {packed:.2f} | {dropped} | {accuracy:.2%} | "
                         f"{int((predicted != reference).sum())} |")
            print(lines[-1], flush=True)
    now = datetime.now(UTC)
    report = "\n".join([
        f"# Pruning the word-embedding table ({now:%Y-%m-%d %H:%M} UTC)", "",
        f"Command: `.venv/bin/python bench/embedding_prune.py --model {args.model} --keep-below "
        f"{' '.join(map(str, args.keep_below))}`", "",
        f"Model `{baseline.version}`; BANKING77 test, 3,080 texts, each alone (CC BY 4.0, Casanueva et al. 2020); "
        f"the kept set from train.csv only. 1-minute load average {os.getloadavg()[0]:.1f}.", "",
        *lines, "",
    ])
    write_report("embedding-prune", report, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
