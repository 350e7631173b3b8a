"""A sparse TF-IDF head over wordpiece n-grams, trained beside the encoder and added inside the ONNX graph.

The encoder and a bag of n-grams make different mistakes; summing their logits helps. The n-gram features are
computed by ONNX's `TfIdfVectorizer` op from the same token ids the encoder reads, so the bundle's interface
stays "token ids in, probabilities out" and the serving engine needs no change.

Features (identical in training and in the graph): term counts of the 1..n-grams of the token ids (padding id 0
never matches), log(1 + count), times the n-gram's idf, L2-normalised.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy import optimize, sparse

from model_build.export import OPSET

NGram = tuple[int, ...]


@dataclass
class NGramVocabulary:
    ngrams: list[NGram]  # grouped by length: all unigrams, then all bigrams, ...
    idf: np.ndarray  # float32, one per n-gram

    @property
    def max_n(self) -> int:
        return max((len(g) for g in self.ngrams), default=0)

    def index(self) -> dict[NGram, int]:
        return {g: i for i, g in enumerate(self.ngrams)}


def _ngrams(ids: Sequence[int], max_n: int):
    for n in range(1, max_n + 1):
        for start in range(len(ids) - n + 1):
            yield tuple(ids[start : start + n])


def build_vocabulary(id_lists: Sequence[Sequence[int]], *, max_n: int, min_df: int) -> NGramVocabulary:
    """N-grams seen in at least `min_df` texts (none if the data is too small); smoothed idf as scikit-learn
    computes it."""
    df: Counter[NGram] = Counter()
    for ids in id_lists:
        df.update(set(_ngrams(ids, max_n)))
    kept = sorted((g for g, count in df.items() if count >= min_df and 0 not in g), key=lambda g: (len(g), g))
    n_docs = len(id_lists)
    idf = np.array([math.log((1 + n_docs) / (1 + df[g])) + 1.0 for g in kept], dtype=np.float32)
    return NGramVocabulary(kept, idf)


def tfidf_matrix(id_lists: Sequence[Sequence[int]], vocabulary: NGramVocabulary) -> sparse.csr_matrix:
    index = vocabulary.index()
    rows, cols, values = [], [], []
    for row, ids in enumerate(id_lists):
        counts = Counter(index[g] for g in _ngrams(ids, vocabulary.max_n) if g in index)
        for col, count in counts.items():
            rows.append(row)
            cols.append(col)
            values.append(math.log1p(count) * vocabulary.idf[col])
    matrix = sparse.csr_matrix((np.array(values, dtype=np.float32), (rows, cols)),
                               shape=(len(id_lists), len(vocabulary.ngrams)), dtype=np.float32)
    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A1
    return sparse.csr_matrix(sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix, dtype=np.float32)


@dataclass
class SparseHead:
    weight: np.ndarray  # (labels, n-grams) float32
    bias: np.ndarray  # (labels,) float32


def train_sparse_head(features: sparse.csr_matrix, targets: np.ndarray, weights: np.ndarray, *, num_labels: int,
                      l2: float, max_iter: int = 300) -> SparseHead:
    """Multinomial logistic regression on sparse features: scipy L-BFGS on the exact loss and gradient
    (seconds; torch's sparse backward is far slower here)."""
    n, d = features.shape
    sample_weight = (weights / weights.mean()).astype(np.float64)
    onehot = np.zeros((n, num_labels))
    onehot[np.arange(n), targets] = 1.0
    x = features.astype(np.float64).tocsr()
    xt = x.T.tocsr()

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat[: num_labels * d].reshape(num_labels, d)
        b = flat[num_labels * d :]
        logits = np.asarray(x @ w.T) + b
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
        log_p = logits - log_norm
        loss = -(sample_weight * (onehot * log_p).sum(axis=1)).mean() + l2 * (w * w).sum()
        residual = (np.exp(log_p) - onehot) * sample_weight[:, None] / n
        grad_w = np.asarray(xt @ residual).T + 2 * l2 * w
        return loss, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    result = optimize.minimize(loss_and_grad, np.zeros(num_labels * (d + 1)), jac=True, method="L-BFGS-B",
                               options={"maxiter": max_iter})
    weight = result.x[: num_labels * d].reshape(num_labels, d).astype(np.float32)
    return SparseHead(weight=weight, bias=result.x[num_labels * d :].astype(np.float32))


def sparse_logits(features: sparse.csr_matrix, head: SparseHead) -> np.ndarray:
    return np.asarray(features @ head.weight.T) + head.bias


def add_to_graph(model_path: Path, out_path: Path, *, vocabulary: NGramVocabulary, head: SparseHead,
                 weight: float, max_tokens: int, logits_name: str = "logits",
                 output_name: str = "probabilities") -> Path:
    """Graft the sparse head onto an exported encoder graph whose output is `logits`:
    probabilities = softmax(encoder logits + weight * sparse logits). Other outputs (the embedding) stay.

    A text of width L ids holds at most max_n * L distinct n-grams, so the graph keeps only the top
    min(max_n * L, slots) counts (TopK; the rest are zeros) and gathers those n-grams' idf and weight rows: the
    same sums as a dense (n-grams x labels) product at a fraction of its cost (11,226 x 77 on BANKING77: ~0.3 ms
    of a 2 ms forward pass). Bounding k by the width, not by `max_tokens`, gathers ~30 rows for a 15-token text
    instead of 255 (~3 % of its forward pass; docs/model.md, "Engine").
    """
    model = onnx.load(str(model_path))
    graph = model.graph
    if not graph.output or graph.output[0].name != logits_name:
        raise ValueError(f"expected the first graph output named {logits_name!r}")
    counts, pool, start = [], [], 0
    for n in range(1, vocabulary.max_n + 1):
        group = [g for g in vocabulary.ngrams if len(g) == n]
        counts.append(start)
        pool.extend(token for g in group for token in g)
        start += len(group)
    slots = min(len(vocabulary.ngrams), sum(max(0, max_tokens - n + 1) for n in range(1, vocabulary.max_n + 1)))
    # Stored as float16 and cast after the gather: n-grams x labels x 4 bytes took a CLINC150 bundle (14,615 x 150)
    # to 32.7 MB, over the 30 MB budget; half of it is 4.4 MB, and casting ~30 gathered rows measured no slower
    # (docs/model.md, "Model size").
    scaled_weight = (head.weight.T * weight).astype(np.float16)  # (n-grams, labels)
    scaled_bias = (head.bias * weight).astype(np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(vocabulary.idf.astype(np.float32), "sparse_idf"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "sparse_one"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "sparse_eps"),
        numpy_helper.from_array(np.array([slots], dtype=np.int64), "sparse_slots"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "sparse_axis_1"),
        numpy_helper.from_array(np.array([vocabulary.max_n], dtype=np.int64), "sparse_max_n"),
        numpy_helper.from_array(scaled_weight, "sparse_head_weight"),
        numpy_helper.from_array(scaled_bias, "sparse_head_bias"),
    ])
    graph.node.extend([
        helper.make_node("TfIdfVectorizer", ["input_ids"], ["sparse_counts"], mode="TF",
                         min_gram_length=1, max_gram_length=vocabulary.max_n, max_skip_count=0,
                         ngram_counts=counts, ngram_indexes=list(range(len(vocabulary.ngrams))),
                         pool_int64s=pool),
        # k = min(max_n * width, slots): a text holds at most that many distinct n-grams.
        helper.make_node("Shape", ["input_ids"], ["sparse_ids_shape"]),
        helper.make_node("Gather", ["sparse_ids_shape", "sparse_axis_1"], ["sparse_width"], axis=0),
        helper.make_node("Mul", ["sparse_width", "sparse_max_n"], ["sparse_bound"]),
        helper.make_node("Min", ["sparse_bound", "sparse_slots"], ["sparse_k"]),
        # (batch, k): every n-gram the text holds, then zeros.
        helper.make_node("TopK", ["sparse_counts", "sparse_k"], ["sparse_present", "sparse_index"], axis=-1,
                         largest=1, sorted=0),
        helper.make_node("Add", ["sparse_present", "sparse_one"], ["sparse_counts_1"]),
        helper.make_node("Log", ["sparse_counts_1"], ["sparse_tf"]),
        helper.make_node("Gather", ["sparse_idf", "sparse_index"], ["sparse_idf_present"], axis=0),
        helper.make_node("Mul", ["sparse_tf", "sparse_idf_present"], ["sparse_tfidf"]),
        helper.make_node("ReduceL2", ["sparse_tfidf"], ["sparse_norm"], axes=[-1], keepdims=1),
        helper.make_node("Max", ["sparse_norm", "sparse_eps"], ["sparse_norm_safe"]),
        helper.make_node("Div", ["sparse_tfidf", "sparse_norm_safe"], ["sparse_features"]),
        # (batch, 1, slots) @ (batch, slots, labels): the weight rows of the present n-grams only.
        helper.make_node("Unsqueeze", ["sparse_features", "sparse_axis_1"], ["sparse_features_row"]),
        helper.make_node("Gather", ["sparse_head_weight", "sparse_index"], ["sparse_weight_present_16"], axis=0),
        helper.make_node("Cast", ["sparse_weight_present_16"], ["sparse_weight_present"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["sparse_features_row", "sparse_weight_present"], ["sparse_logits_row"]),
        helper.make_node("Squeeze", ["sparse_logits_row", "sparse_axis_1"], ["sparse_logits_raw"]),
        helper.make_node("Add", ["sparse_logits_raw", "sparse_head_bias"], ["sparse_logits"]),
        helper.make_node("Add", [logits_name, "sparse_logits"], ["combined_logits"]),
        helper.make_node("Softmax", ["combined_logits"], [output_name], axis=-1),
    ])
    num_labels = head.weight.shape[0]
    others = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in list(graph.output)[1:]]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", num_labels]))
    graph.output.extend(others)
    if not any(o.domain in ("", "ai.onnx") and o.version >= OPSET for o in model.opset_import):
        raise ValueError("the encoder graph must use the default ONNX domain")
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path
