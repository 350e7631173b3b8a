"""Classify texts with a bundle's ONNX model: raw token ids in, class probabilities out.

A text's probabilities are a function of the text only: the same in the API, a dropped file, the CLI, in any
order and with any thread count (docs/model.md, "Engine", has the measurements behind this). A model built
with dynamic int8 quantization (one activation scale per tensor per call) runs every text on its own (batch of
one, no padding): sharing a forward pass would make a text's probabilities depend on its neighbours. A model
built with constant activation scales (`Bundle.batchable`; model_build/export.py) runs texts of the same token
length together, up to CHUNK per pass and never padded: every row then goes through the same integer products
and per-row float kernels as it would alone, bit for bit (tests/engine/test_batch_independence.py), at ~1.7x
the texts per second.

A bundle built with out-of-scope detection has a second graph output, `novelty` (model_build/novelty.py),
read from the same session.run; a text is out of scope when its novelty passes the bundle's calibrated
threshold (or the stage's override). Older bundles have no such output: novelty 0, never out of scope.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from categorizer.engine.bundle import Bundle, load_bundle
from categorizer.engine.explain import Explanation, locate, occluded_ids, top_spans, words_of

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top_k: list[LabelScore]
    needs_review: bool
    truncated: bool
    # Out-of-scope detection: novelty is higher for texts less like the training data; out_of_scope when it
    # passes the bundle's calibrated threshold (bundles without novelty statistics never flag).
    out_of_scope: bool = False
    novelty: float = 0.0
    explanation: Explanation | None = None  # only when asked for (classify(..., explain=True))


@dataclass(frozen=True)
class TextError:
    """A per-item failure: the text cannot be classified (the other items still are)."""

    code: str
    message: str


@dataclass
class _Encoded:
    index: int
    ids: list[int]
    truncated: bool


def available_cpus() -> int:
    """vCPUs this process may use (cgroup/affinity aware where the OS tells us)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# onnxruntime would fuse residual Add + LayerNormalization into SkipLayerNormalization, whose kernel is slower
# than the two plain ops here (model_build/export.py `fuse`; measured in docs/model.md, "Engine").
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def create_session(model_path: Path, *, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def load_tokenizer(path: Path, *, max_tokens: int) -> Tokenizer:
    """The shipped tokenizer.json pads to a fixed 128; we pad per chunk ourselves and truncate explicitly."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def length_sorted_chunks(id_lists: Sequence[list[int]], chunk_size: int) -> list[list[int]]:
    """Positions grouped into chunks of similar length, so dynamic padding wastes little work."""
    order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
    return [order[start : start + chunk_size] for start in range(0, len(order), chunk_size)]


def run_chunk(session: ort.InferenceSession, id_lists: Sequence[list[int]], chunk: list[int]) -> np.ndarray:
    """One padded forward pass over the id lists at the chunk's positions. Only for a graph whose attention keeps
    its mask (model_build/train.py's embedding graph): a served graph's attention has none, and the engine never
    pads its texts."""
    width = max(len(id_lists[position]) for position in chunk)
    input_ids = np.zeros((len(chunk), width), dtype=np.int64)
    attention_mask = np.zeros((len(chunk), width), dtype=np.int64)
    for row, position in enumerate(chunk):
        ids = id_lists[position]
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    (outputs,) = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
    return outputs


def run_length_sorted(session: ort.InferenceSession, id_lists: Sequence[list[int]], chunk_size: int):
    """Yield (position, output row) for every id list, one session, chunk by chunk in length order."""
    for chunk in length_sorted_chunks(id_lists, chunk_size):
        yield from zip(chunk, run_chunk(session, id_lists, chunk), strict=True)


NOVELTY_OUTPUT = "novelty"
CHUNK = 16  # texts of one token length per forward pass (bench/results/*-static-scales.md)


def run_same_length(session: ort.InferenceSession, id_lists: Sequence[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass over texts of one token length, no padding. Several texts share a pass only with a
    batchable model (`Classifier._units`). Returns (probabilities, novelty) with a row per text; novelty is 0
    for a model without the `novelty` output."""
    input_ids = np.array(id_lists, dtype=np.int64)
    outputs = session.run(None, {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)})
    novelty = outputs[1] if len(outputs) > 1 else np.zeros(len(id_lists), dtype=np.float32)
    return outputs[0], novelty


def run_one(session: ort.InferenceSession, ids: list[int]) -> tuple[np.ndarray, float]:
    """One text's forward pass (batch of one, no padding): its outputs depend on its ids only.
    Returns (probabilities, novelty); novelty is 0.0 for a model without the `novelty` output."""
    probabilities, novelty = run_same_length(session, [ids])
    return probabilities[0], float(novelty[0])


Scored = tuple[np.ndarray, float]  # (probabilities, novelty) of one text


def run_unit(session: ort.InferenceSession, unit: Sequence[_Encoded]) -> list[tuple[_Encoded, Scored]]:
    """(item, (probabilities, novelty)) for each text of one forward pass."""
    probabilities, novelty = run_same_length(session, [item.ids for item in unit])
    return [(item, (probabilities[row], float(novelty[row]))) for row, item in enumerate(unit)]


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


class Classifier:
    """Parallelism is explicit: `threads` single-threaded ONNX sessions, never a count guessed from affinity.

    Each text is its own forward pass (see the module docstring). Calls with several texts spread them over
    `threads` sessions in parallel threads (onnxruntime releases the GIL); every session runs one intra-op
    thread, so the arithmetic, and so the probabilities, never depend on the thread count.
    """

    def __init__(self, bundle: Bundle, *, threads: int | None = None,
                 out_of_scope_threshold: float | None = None):
        """`out_of_scope_threshold` overrides the bundle's calibrated one (a stage setting)."""
        self.bundle = bundle
        self.labels = bundle.labels
        self.version = bundle.version
        self.review_threshold = bundle.review_threshold
        self.max_tokens = bundle.max_tokens
        self.threads = threads or available_cpus()
        self._model_path = bundle.file("model.onnx")
        self._session = create_session(self._model_path, threads=1)
        outputs = [output.name for output in self._session.get_outputs()]
        self.has_novelty = len(outputs) > 1 and outputs[1] == NOVELTY_OUTPUT
        # None: this model cannot tell (no novelty output, or no threshold): nothing is flagged out of scope.
        self.out_of_scope_threshold: float | None = None
        if self.has_novelty:
            self.out_of_scope_threshold = (out_of_scope_threshold if out_of_scope_threshold is not None
                                           else bundle.out_of_scope_threshold)
        self._parallel_sessions: list[ort.InferenceSession] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._tokenizer = load_tokenizer(bundle.file("tokenizer.json"), max_tokens=self.max_tokens)

    @classmethod
    def from_path(cls, path: Path | str, *, threads: int | None = None,
                  out_of_scope_threshold: float | None = None) -> Classifier:
        return cls(load_bundle(path), threads=threads, out_of_scope_threshold=out_of_scope_threshold)

    def classify(self, texts: Sequence[str], *, top_k: int = 3, explain: bool = False) -> list[Prediction | TextError]:
        """One result per input, in input order. Bad items are TextError; they never fail the call.

        `explain`: each prediction also carries its explanation (engine/explain.py), computed from the same
        forward pass's probabilities, so explaining costs the occluded variants only."""
        results: list[Prediction | TextError | None] = [None] * len(texts)
        valid: list[tuple[int, str]] = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                results[index] = TextError("invalid_text", "text must be a string")
                continue
            normalized = normalize_text(text)
            if not normalized:
                results[index] = TextError("empty_text", "text is empty or only whitespace")
                continue
            valid.append((index, normalized))
        if valid:
            # One text: `encode` skips the batch call's parallel machinery (~0.03 ms of a ~1.3 ms call); same ids.
            encodings = ([self._tokenizer.encode(valid[0][1])] if len(valid) == 1
                         else self._tokenizer.encode_batch([text for _, text in valid]))
            encoded = [
                _Encoded(index=index, ids=enc.ids, truncated=bool(enc.overflowing))
                for (index, _), enc in zip(valid, encodings, strict=True)
            ]
            top_k = max(1, min(top_k, len(self.labels)))
            position = {index: at for at, (index, _) in enumerate(valid)} if explain else {}
            for item, (probs, novelty) in self._run_sorted(encoded):
                prediction = self._prediction(probs, novelty, top_k, item.truncated)
                if explain:
                    at = position[item.index]
                    prediction = replace(prediction, explanation=self._explain(
                        texts[item.index], valid[at][1], encodings[at], probs))
                results[item.index] = prediction
        return results  # type: ignore[return-value]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for non-empty texts, shape (len(texts), labels). For evaluation."""
        return self.scores(texts)[0]

    def scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (len(texts), labels), novelty (len(texts),)) for non-empty texts. For evaluation."""
        encodings = self._tokenizer.encode_batch([normalize_text(t) for t in texts])
        items = [_Encoded(index=i, ids=e.ids, truncated=False) for i, e in enumerate(encodings)]
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        novelty = np.zeros(len(texts), dtype=np.float32)
        for item, (probs, score) in self._run_sorted(items):
            out[item.index] = probs
            novelty[item.index] = score
        return out, novelty

    def explain(self, text: str) -> Explanation | None:
        """The words that moved the model toward its label and its runner-up (engine/explain.py); None for a
        text that cannot be classified. Costs one extra batched pass over the text's one-word-less variants."""
        normalized = normalize_text(text) if isinstance(text, str) else ""
        if not normalized:
            return None
        encoding = self._tokenizer.encode(normalized)
        probs, _ = run_one(self._session, encoding.ids)
        return self._explain(text, normalized, encoding, probs)

    def _explain(self, text: str, normalized: str, encoding: Encoding, probs: np.ndarray) -> Explanation:
        """Occlusion over the words of one text whose own probabilities are `probs`."""
        order = np.argsort(-probs, kind="stable")
        label, runner_up = int(order[0]), (int(order[1]) if len(order) > 1 else None)
        words = words_of(encoding)
        if not words:
            return Explanation(self.labels[label], [], None if runner_up is None else self.labels[runner_up], [])
        variants = [_Encoded(index=i, ids=ids, truncated=False)
                    for i, ids in enumerate(occluded_ids(encoding.ids, words))]
        without = np.zeros((len(variants), len(self.labels)), dtype=np.float32)
        for unit in self._units(variants):  # run as any texts are: never padded (the attention has no mask)
            for item, (variant_probs, _) in run_unit(self._session, unit):
                without[item.index] = variant_probs
        texts = [locate(text, normalized, word.start, word.end) for word in words]
        return Explanation(
            label=self.labels[label], spans=top_spans(probs[label] - without[:, label], texts),
            runner_up=None if runner_up is None else self.labels[runner_up],
            runner_up_spans=[] if runner_up is None else top_spans(probs[runner_up] - without[:, runner_up], texts))

    def is_out_of_scope(self, novelty: float) -> bool:
        return self.out_of_scope_threshold is not None and novelty > self.out_of_scope_threshold

    def _run_sorted(self, items: list[_Encoded]):
        """Yield (item, (probabilities, novelty)) for every item, one forward pass per unit (`_units`); the
        largest units first balances the workers."""
        units = self._units(items)
        if self.threads == 1 or len(units) < 2:
            for unit in units:
                yield from run_unit(self._session, unit)
            return
        sessions, pool = self._parallel()
        order = sorted(units, key=lambda unit: -len(unit) * len(unit[0].ids))
        shares = [order[worker :: len(sessions)] for worker in range(len(sessions))]

        def work(worker: int) -> list[tuple[_Encoded, Scored]]:
            return [pair for unit in shares[worker] for pair in run_unit(sessions[worker], unit)]

        for pairs in pool.map(work, range(len(sessions))):
            yield from pairs

    def _units(self, items: list[_Encoded]) -> list[list[_Encoded]]:
        """The forward passes: each text alone, or (a batchable model) up to CHUNK texts of one token length."""
        if not self.bundle.batchable:
            return [[item] for item in items]
        by_length: dict[int, list[_Encoded]] = {}
        for item in items:
            by_length.setdefault(len(item.ids), []).append(item)
        return [group[start : start + CHUNK] for group in by_length.values() for start in range(0, len(group), CHUNK)]

    def _parallel(self) -> tuple[list[ort.InferenceSession], ThreadPoolExecutor]:
        """Extra sessions are made on the first large call, keeping cold start to one session."""
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor  # here: a one-text cold start never needs it

                extra = [create_session(self._model_path, threads=1) for _ in range(self.threads - 1)]
                self._parallel_sessions = [self._session, *extra]
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx")
        return self._parallel_sessions, self._pool

    def _prediction(self, probs: np.ndarray, novelty: float, top_k: int, truncated: bool) -> Prediction:
        best = np.argsort(-probs, kind="stable")[:top_k]
        ranked = [LabelScore(self.labels[i], round(float(probs[i]), 6)) for i in best]
        confidence = ranked[0].score
        novelty = round(novelty, 6)
        out_of_scope = self.is_out_of_scope(novelty)
        return Prediction(
            label=ranked[0].label,
            confidence=confidence,
            top_k=ranked,
            needs_review=confidence < self.review_threshold or out_of_scope,
            truncated=truncated,
            out_of_scope=out_of_scope,
            novelty=novelty,
        )
