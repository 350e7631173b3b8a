"""The TF-IDF n-gram head: features, training, the ONNX graft, and a full build that uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from categorizer.engine import Classifier, load_bundle
from categorizer.engine.classifier import create_session
from model_build.data import read_labelled
from model_build.recipe import FAST, FULL
from model_build.sparse_head import (
    SparseHead,
    add_to_graph,
    build_vocabulary,
    sparse_logits,
    tfidf_matrix,
    train_sparse_head,
)
from model_build.train import tokenize
from tests.support.paths import TEST_DATA


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _zero_logits_graph(path: Path, num_labels: int, output: str = "logits") -> Path:
    """Stand-in encoder: the real graph's inputs, and logits that are always zero."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["ids_float"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["ids_float", "axis"], ["summed"], keepdims=1),
         helper.make_node("Mul", ["summed", "zeros"], [output])],
        "zero_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", num_labels])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
         numpy_helper.from_array(np.zeros(num_labels, dtype=np.float32), "zeros")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def tiny():
    data = read_labelled(TEST_DATA / "tiny.csv")
    labels = data.label_set()
    ids = tokenize(data.texts, max_tokens=128)
    targets = np.array([labels.index(label) for label in data.labels])
    return data, labels, ids, targets


def test_vocabulary_keeps_ngrams_seen_often_enough_with_rarer_ones_weighted_higher():
    ids = [[101, 5, 6, 102], [101, 5, 7, 102], [101, 5, 6, 102]]
    vocabulary = build_vocabulary(ids, max_n=2, min_df=2)
    assert (7,) not in vocabulary.ngrams and (5, 7) not in vocabulary.ngrams
    assert {(5,), (6,), (101, 5), (5, 6)} <= set(vocabulary.ngrams)
    assert [len(g) for g in vocabulary.ngrams] == sorted(len(g) for g in vocabulary.ngrams)  # grouped by length
    idf = dict(zip(vocabulary.ngrams, vocabulary.idf, strict=True))
    assert idf[(6,)] > idf[(5,)]
    rows = tfidf_matrix(ids, vocabulary)
    assert np.allclose(np.sqrt(rows.multiply(rows).sum(axis=1)).A1, 1.0)


def test_vocabulary_is_empty_when_no_ngram_repeats():
    assert build_vocabulary([[101, 5, 102], [103, 6, 104]], max_n=2, min_df=2).ngrams == []


def test_sparse_head_learns_the_training_data(tiny):
    data, labels, ids, targets = tiny
    vocabulary = build_vocabulary(ids, max_n=2, min_df=1)
    features = tfidf_matrix(ids, vocabulary)
    head = train_sparse_head(features, targets, np.ones(len(data), dtype=np.float32), num_labels=len(labels),
                             l2=1e-4)
    assert (sparse_logits(features, head).argmax(axis=1) == targets).mean() >= 0.9


@pytest.mark.parametrize("max_tokens", ["longest text", 128])
def test_onnx_graft_computes_the_same_probabilities_as_python_padded_or_not(tiny, tmp_path: Path, max_tokens):
    """The graph gathers only the n-grams a text holds (at most 2 x its width for 1-2-grams, and at most
    2 * max_tokens - 1): with max_tokens at the longest text that is fewer slots than the vocabulary, and the
    sums stay exact for a padded batch and for one text alone (k from its own width)."""
    data, labels, ids, targets = tiny
    width = max(len(row) for row in ids)
    max_tokens = width if max_tokens == "longest text" else max_tokens
    vocabulary = build_vocabulary(ids, max_n=2, min_df=1)
    assert max_tokens != width or 2 * width - 1 < len(vocabulary.ngrams)
    features = tfidf_matrix(ids, vocabulary)
    head = train_sparse_head(features, targets, np.ones(len(data), dtype=np.float32), num_labels=len(labels),
                             l2=1e-4)
    model = add_to_graph(_zero_logits_graph(tmp_path / "zero.onnx", len(labels)), tmp_path / "sparse.onnx",
                         vocabulary=vocabulary, head=head, weight=0.7, max_tokens=max_tokens)
    session = create_session(model, threads=1)
    # The graph stores the scaled weights as float16 (bundle size); the sums are exact for those weights.
    stored = SparseHead(weight=(0.7 * head.weight).astype(np.float16).astype(np.float32), bias=0.7 * head.bias)
    expected = _softmax(sparse_logits(features, stored))
    padded = np.zeros((len(ids), width), dtype=np.int64)  # the engine pads batches with id 0
    for row, token_ids in enumerate(ids):
        padded[row, : len(token_ids)] = token_ids
    (batched,) = session.run(None, {"input_ids": padded, "attention_mask": (padded != 0).astype(np.int64)})
    np.testing.assert_allclose(batched, expected, atol=1e-5)
    one = np.array([ids[0]], dtype=np.int64)
    (single,) = session.run(None, {"input_ids": one, "attention_mask": np.ones_like(one)})
    np.testing.assert_allclose(single[0], expected[0], atol=1e-5)


def test_graft_refuses_a_graph_that_already_outputs_probabilities(tiny, tmp_path: Path):
    data, labels, ids, targets = tiny
    vocabulary = build_vocabulary(ids, max_n=1, min_df=1)
    head = train_sparse_head(tfidf_matrix(ids, vocabulary), targets, np.ones(len(data), dtype=np.float32),
                             num_labels=len(labels), l2=1e-4)
    graph = _zero_logits_graph(tmp_path / "zero.onnx", len(labels), output="probabilities")
    with pytest.raises(ValueError, match="named 'logits'"):
        add_to_graph(graph, tmp_path / "out.onnx", vocabulary=vocabulary, head=head, weight=1.0, max_tokens=128)


def test_full_recipe_uses_the_sparse_head_and_fast_does_not():
    assert FULL.sparse_head_weight > 0
    assert FAST.sparse_head_weight == 0 and FAST.fine_tune_epochs == 0


@pytest.mark.slow
def test_build_with_sparse_head_gives_a_verified_bundle_with_the_op_inside(tmp_path: Path):
    from model_build.pipeline import BuildRequest, build

    recipe = FAST.with_overrides({"sparse_head_weight": "0.5", "sparse_min_df": "1"})
    result = build(BuildRequest(train_files=[TEST_DATA / "tiny.csv"], bundle_dir=tmp_path / "bundle",
                                recipe=recipe, progress=False))
    bundle = load_bundle(result.bundle_dir)
    nodes = onnx.load(str(result.bundle_dir / "model.onnx")).graph.node
    ops = {node.op_type for node in nodes}
    assert "TfIdfVectorizer" in ops and "QAttention" in ops  # the n-gram head beside the fused int8 encoder
    # The classifier head reads the fp32 embedding: no quantization of a 1 x 384 product (export.py).
    assert [node.op_type for node in nodes if "embedding" in node.input and node.name.startswith("/head/")] == [
        "MatMul"]
    assert not any(node.op_type == "DynamicQuantizeLinear" and "embedding" in node.input for node in nodes)
    assert bundle.manifest["recipe"]["sparse_head_weight"] == pytest.approx(0.5)
    assert bundle.manifest["sparse_head_ngrams"] > 0
    classifier = Classifier(bundle, threads=1)
    (prediction,) = classifier.classify(["my new card still has not arrived"])
    assert prediction.label == "card_arrival"
    assert sum(score.score for score in prediction.top_k) == pytest.approx(1.0, abs=1e-4)
