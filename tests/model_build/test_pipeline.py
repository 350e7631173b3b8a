"""The model pipeline: reference parity, training on small real files, the CLI, the SageMaker contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from categorizer.engine import Classifier, load_bundle
from model_build.data import DataError, read_labelled, stratified_split
from model_build.recipe import FAST
from tests.support.paths import BANKING77, ROOT, TEST_DATA

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "categorizer_cli.main"]


def test_onnx_embeddings_match_sentence_transformers(tmp_path: Path):
    """The exported encoder (pooling + normalisation in the graph) reproduces the reference implementation."""
    from sentence_transformers import SentenceTransformer

    from model_build.encoder import base_encoder_dir, load_encoder
    from model_build.train import embed

    texts = ["I still have not received my card", "What is the exchange rate?", "héllo wörld 👋",
             "a much longer sentence " * 10]
    reference = SentenceTransformer(str(base_encoder_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    ours = embed(load_encoder(), texts, workdir=tmp_path, max_tokens=256, threads=1, progress=False)
    cosine = np.sum(reference * ours, axis=1)
    assert cosine.min() >= 0.99, cosine



def test_the_served_graphs_attention_takes_no_mask_and_gives_unpadded_texts_the_same_embedding(tmp_path: Path):
    """The engine never pads (a text alone, or texts of one length together), so the served graph's fused
    attention is built without a mask (cheaper per call); for the unpadded rows it ever sees, nothing changes."""
    import onnx

    from categorizer.engine.classifier import create_session, load_tokenizer
    from model_build.encoder import SentenceEncoder, base_encoder_dir, load_encoder
    from model_build.export import export_onnx, fuse

    encoder = load_encoder()
    raw = export_onnx(SentenceEncoder(encoder), tmp_path / "raw.onnx", output_name="embedding")
    shape = {"num_heads": encoder.config.num_attention_heads, "hidden_size": encoder.config.hidden_size}
    masked = fuse(raw, tmp_path / "masked.onnx", **shape)
    unmasked = fuse(raw, tmp_path / "unmasked.onnx", **shape, attention_mask=False)
    attention = [node for node in onnx.load(str(unmasked)).graph.node if node.op_type == "Attention"]
    assert len(attention) == encoder.config.num_hidden_layers
    assert all(len(node.input) < 4 or not node.input[3] for node in attention)  # input 3: the mask index

    tokenizer = load_tokenizer(base_encoder_dir() / "tokenizer.json", max_tokens=128)
    sessions = [create_session(path, threads=1) for path in (masked, unmasked)]
    for text in ["I still have not received my card", "What is the exchange rate?", "héllo wörld 👋"]:
        ids = np.array([tokenizer.encode(text).ids] * 3, dtype=np.int64)  # three rows of one length: a shared pass
        with_mask, without_mask = (session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
                                   for session in sessions)
        assert np.abs(with_mask - without_mask).max() <= 1e-6

def test_int8_default_model_meets_the_accuracy_bar(default_bundle: Path):
    metrics = load_bundle(default_bundle).manifest["metrics"]
    assert metrics["n"] == 3080
    assert metrics["accuracy"] >= 0.925
    assert metrics["macro_f1"] >= 0.925
    assert (default_bundle / "model.onnx").stat().st_size <= 30 * 1024 * 1024


def test_tiny_csv_trains_a_working_model(tiny_bundle: Path):
    bundle = load_bundle(tiny_bundle)
    assert bundle.manifest["train_items"] > 0
    assert 0.0 <= bundle.review_threshold <= 1.0
    report = tiny_bundle / "report"
    for name in ("report.md", "metrics.json", "confusion.png", "reliability.png"):
        assert (report / name).stat().st_size > 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ece", "review"} <= set(metrics)


def test_cli_builds_a_two_column_news_model(tmp_path: Path):
    """A 4-class news CSV with title + description trains and evaluates with one command."""
    out = tmp_path / "models"
    result = subprocess.run(
        [*CLI, "model", "build", "--fast", "--data", str(TEST_DATA / "news.csv"),
         "--text-column", "title", "description", "--label-column", "topic", "--out", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (bundle_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert (out / f"{bundle_dir.name}.tar.gz").is_file()
    classifier = Classifier.from_path(bundle_dir, threads=1)
    assert set(classifier.labels) == {"World", "Sports", "Business", "Sci/Tech"}
    assert classifier.bundle.manifest["text_columns"] == ["title", "description"]
    predictions = classifier.classify(["Striker scores hat-trick in cup final. The team celebrated the win.",
                                       "Stocks tumble as bank profits slump. Investors sold shares."])
    assert [p.label for p in predictions] == ["Sports", "Business"]


def test_cli_build_keeps_the_out_of_scope_label_out_of_the_classes(tmp_path: Path):
    """`--oos-label oos`: those rows are no class; the manifest and report say how many the threshold catches."""
    rows = (TEST_DATA / "tiny.csv").read_text().splitlines()
    foreign = ["how do I bake sourdough bread", "play some jazz music", "who won the football match",
               "what is the capital of France", "set an alarm for seven", "lorem ipsum dolor sit amet"]
    (tmp_path / "train.csv").write_text("\n".join([*rows, *(f"{t},oos" for t in foreign[:3])]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([rows[0], *rows[1::3], *(f"{t},oos" for t in foreign[3:])]) + "\n")
    out = tmp_path / "models"
    result = subprocess.run(
        [*CLI, "model", "build", "--fast", "--data", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
         "--oos-label", "oos", "--out", str(out)], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "out-of-scope threshold" in result.stdout
    (bundle_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    bundle = load_bundle(bundle_dir)
    assert "oos" not in bundle.labels and len(bundle.labels) == 3
    novelty = bundle.manifest["novelty"]
    assert (novelty["oos_label"], novelty["oos_train_items"], novelty["oos_train_recall"]) == ("oos", 3, 1.0)
    assert bundle.manifest["out_of_scope"]["oos_items"] == 3 and bundle.manifest["out_of_scope"]["oos_recall"] == 1.0
    assert bundle.manifest["metrics"]["n"] == len(rows[1::3])  # the oos rows are not scored as a class
    assert "Training items labelled 'oos' (3, not a class): 100.00% flagged." in (
        bundle_dir / "report" / "report.md").read_text()


def test_cli_classify_prints_labels(default_bundle: Path):
    result = subprocess.run([*CLI, "classify", "--json", "--model", str(default_bundle),
                             "my card has not arrived yet", ""], capture_output=True, text=True, check=True)
    body = json.loads(result.stdout)
    first, second = body["predictions"]
    assert first["label"] == "card_arrival"
    assert second["code"] == "empty_text"


def test_sagemaker_entrypoint_follows_the_directory_contract(tmp_path: Path):
    train, test, feedback, model_dir = (tmp_path / n for n in ("train", "test", "feedback", "model"))
    for d in (train, test, feedback):
        d.mkdir()
    rows = (TEST_DATA / "tiny.csv").read_text().splitlines()
    (train / "base.csv").write_text("\n".join(rows) + "\n")
    (test / "holdout.csv").write_text("\n".join([rows[0], *rows[1::3]]) + "\n")
    (feedback / "feedback.jsonl").write_text(
        json.dumps({"text": "the card never came", "label": "card_arrival"}) + "\n"
        + json.dumps({"text": "x", "label": "not_a_label"}) + "\n")
    env = {**os.environ, "SM_CHANNEL_TRAIN": str(train), "SM_CHANNEL_TEST": str(test),
           "SM_CHANNEL_FEEDBACK": str(feedback), "SM_MODEL_DIR": str(model_dir)}
    result = subprocess.run([sys.executable, str(ROOT / "model_build" / "sagemaker_entry.py"),
                             "--recipe", "fast", "--head-l2", "0.00001"],
                            capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["feedback_items"] == 1
    bundle = load_bundle(model_dir)
    assert bundle.manifest["recipe"]["head_l2"] == pytest.approx(1e-5)
    assert bundle.manifest["metrics"]["n"] == len(rows[1::3])


def test_reading_data_reports_missing_columns(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("title,label\nhello,a\n")
    with pytest.raises(DataError, match=r"no text column 'text'; it has 'title', 'label'. Pick them with --text-col"):
        read_labelled(path, text_columns=["text"], label_column="label")
    with pytest.raises(DataError, match=r"no label column 'category'; it has 'title', 'label'. Pick it with --label"):
        read_labelled(path, text_columns="title", label_column="category")
    assert read_labelled(path, text_columns="title,label", label_column="label").texts == ["hello. a"]


def test_jsonl_and_csv_read_the_same(tmp_path: Path):
    csv_data = read_labelled(TEST_DATA / "news.csv", text_columns=["title", "description"], label_column="topic")
    jsonl = tmp_path / "news.jsonl"
    with jsonl.open("w") as handle:
        for text, label in zip(csv_data.texts, csv_data.labels, strict=True):
            handle.write(json.dumps({"body": text, "y": label}) + "\n")
    again = read_labelled(jsonl, text_columns=["body"], label_column="y")
    assert again.texts == csv_data.texts and again.labels == csv_data.labels


def test_stratified_split_keeps_every_class_on_both_sides():
    data = read_labelled(BANKING77 / "train.csv")
    fit, val = stratified_split(data, fraction=0.1, seed=FAST.seed)
    assert len(fit) + len(val) == len(data)
    assert set(fit.labels) == set(val.labels) == set(data.labels)
    assert stratified_split(data, fraction=0.1, seed=FAST.seed)[1].texts == val.texts  # deterministic


def test_auto_recipe_is_chosen_before_the_test_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`--recipe auto`: every candidate is scored on training items; the evaluation file is opened only after
    the choice, and the report shows validation and test side by side."""
    import model_build.pipeline as pipeline
    from model_build.recipe import AUTO

    train_file, test_file = tmp_path / "train.csv", tmp_path / "test.csv"
    train, held_out = stratified_split(read_labelled(TEST_DATA / "tiny.csv"), fraction=0.25, seed=1)
    for path, data in ((train_file, train), (test_file, held_out)):
        path.write_text("text,category\n" + "".join(f'"{t}",{label}\n' for t, label in
                                                      zip(data.texts, data.labels, strict=True)), encoding="utf-8")
    events: list[str] = []
    real_read, real_choose = pipeline.read_labelled, pipeline.choose_recipe

    def read(path, **kwargs):
        events.append(f"read {Path(path).name}")
        return real_read(path, **kwargs)

    def choose(*args, **kwargs):
        choice = real_choose(*args, **kwargs)
        events.append("recipe fixed")
        return choice

    monkeypatch.setattr(pipeline, "read_labelled", read)
    monkeypatch.setattr(pipeline, "choose_recipe", choose)
    result = pipeline.build(pipeline.BuildRequest(train_files=[train_file], test_file=test_file,
                                                  bundle_dir=tmp_path / "bundle", recipe=AUTO, progress=False,
                                                  choose_recipe=True, budget_seconds=600, threads=1))

    assert events == ["read train.csv", "recipe fixed", "read test.csv"]
    manifest = load_bundle(result.bundle_dir).manifest
    choice = manifest["recipe_choice"]
    names = [trial["name"] for trial in choice["trials"]]
    assert names[0] == "frozen head" and any(name.startswith("fine-tune 2 epochs") for name in names)
    assert choice["chosen"] in names and choice["validation_items"] > 0
    chosen = next(t for t in choice["trials"] if t["name"] == choice["chosen"])
    assert manifest["recipe"]["sparse_head_weight"] == chosen["overrides"]["sparse_head_weight"]
    assert manifest["recipe"]["fine_tune_epochs"] == chosen["overrides"].get("fine_tune_epochs", 0)
    report = (result.bundle_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert "Recipe chosen from the data" in report and "beside test macro-F1" in report


def test_a_fine_tuned_build_calibrates_out_of_scope_on_texts_its_encoder_never_saw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fine-tuned encoder pulls its own training texts toward their class means, so their novelty says little
    about new texts. A trial is fine-tuned on the kept part of the validation split, the held part calibrates
    the threshold, and the served model is fine-tuned on all the data."""
    import model_build.pipeline as pipeline
    from model_build.data import stratified_indices
    from model_build.novelty import NOVELTY_CALIBRATION_UNSEEN
    from model_build.recipe import FULL

    tuned_on: list[list[str]] = []
    real_fine_tune = pipeline.fine_tune

    def fine_tune(model, texts, *args, **kwargs):
        tuned_on.append(list(texts))
        return real_fine_tune(model, texts, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fine_tune", fine_tune)
    recipe = FULL.with_overrides({"fine_tune_epochs": 1})
    result = pipeline.build(pipeline.BuildRequest(train_files=[TEST_DATA / "tiny.csv"], bundle_dir=tmp_path / "b",
                                                  recipe=recipe, progress=False, threads=1))

    train, _ = stratified_split(read_labelled(TEST_DATA / "tiny.csv"), fraction=0.2, seed=recipe.seed)
    keep, held = stratified_indices(train.labels, fraction=recipe.validation_fraction, seed=recipe.seed)
    assert len(tuned_on) == 2 and sorted(tuned_on[0]) == sorted(train.texts[i] for i in keep)
    assert sorted(tuned_on[1]) == sorted(train.texts)
    novelty = load_bundle(result.bundle_dir).manifest["novelty"]
    assert novelty["calibration"] == NOVELTY_CALIBRATION_UNSEEN and novelty["calibration_items"] == len(held) > 0
    assert novelty["flag_rate"] == recipe.novelty_flag_rate_fine_tuned == recipe.flag_rate
    assert novelty["threshold"] > 0 and novelty["trial_threshold"] > 0
    assert result.metrics["out_of_scope"]["in_scope_items"] > 0
