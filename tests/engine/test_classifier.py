"""The inference engine on a real (tiny) bundle: order, top-k, thresholds, truncation, bad text, unicode."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from categorizer.engine import Classifier, Prediction, TextError, load_bundle


def test_predicts_the_obvious_label_in_input_order(classifier: Classifier):
    texts = ["my card was stolen yesterday", "when does my card arrive", "what is the euro exchange rate"]
    results = classifier.classify(texts)
    assert [r.label for r in results] == ["lost_or_stolen_card", "card_arrival", "exchange_rate"]


def test_top_k_is_sorted_and_bounded(classifier: Classifier):
    (result,) = classifier.classify(["I lost my card"], top_k=3)
    scores = [s.score for s in result.top_k]
    assert scores == sorted(scores, reverse=True)
    assert result.top_k[0].label == result.label and result.top_k[0].score == result.confidence
    assert sum(scores) == pytest.approx(1.0, abs=1e-3)  # 3 labels: top-3 is the whole distribution
    assert len(classifier.classify(["I lost my card"], top_k=50)[0].top_k) == 3
    assert len(classifier.classify(["I lost my card"], top_k=1)[0].top_k) == 1


def test_needs_review_follows_the_bundle_threshold(tiny_bundle: Path):
    classifier = Classifier.from_path(tiny_bundle, threads=1)
    text = ["where is my card, it has not come"]  # in scope: only the confidence threshold decides
    (result,) = classifier.classify(text)
    assert not result.out_of_scope
    classifier.review_threshold = 1.01
    assert classifier.classify(text)[0].needs_review is True
    classifier.review_threshold = 0.0
    assert classifier.classify(text)[0].needs_review is False
    assert result.needs_review == (result.confidence < load_bundle(tiny_bundle).review_threshold)


def test_long_text_is_truncated_and_flagged(classifier: Classifier):
    long_text = "where is my card " * 200
    short, long_ = classifier.classify(["where is my card", long_text])
    assert not short.truncated
    assert long_.truncated
    assert long_.label in classifier.labels


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", None, 42])
def test_empty_or_invalid_text_is_a_per_item_error(classifier: Classifier, bad):
    results = classifier.classify(["I lost my card", bad, "exchange rate please"])
    assert isinstance(results[0], Prediction) and isinstance(results[2], Prediction)
    assert isinstance(results[1], TextError)
    assert results[1].code in {"empty_text", "invalid_text"}


def test_unicode_is_nfc_normalised(classifier: Classifier):
    text = "Mi tarjeta llegó? café naïve"
    nfc = unicodedata.normalize("NFC", text)
    nfd = unicodedata.normalize("NFD", text)
    assert nfc != nfd
    a, b = classifier.classify([nfc, nfd])
    assert a.label == b.label and a.confidence == pytest.approx(b.confidence, abs=1e-6)


def test_emoji_rtl_and_cjk_do_not_crash(classifier: Classifier):
    results = classifier.classify(["💳❓", "بطاقتي ضاعت", "我的卡丢了", "\u200b card \u200f stolen"])
    assert all(isinstance(r, Prediction) for r in results)


def test_batch_results_match_single_results(classifier: Classifier):
    texts = [f"card number {i} never arrived" if i % 2 else "rate for dollars?" for i in range(30)]
    batch = classifier.classify(texts)
    singles = [classifier.classify([t])[0] for t in texts]
    assert [b.label for b in batch] == [s.label for s in singles]


def test_thread_count_is_explicit(tiny_bundle: Path):
    classifier = Classifier.from_path(tiny_bundle, threads=1)
    assert classifier.threads == 1
    assert classifier._session.get_session_options().intra_op_num_threads == 1
    parallel = Classifier.from_path(tiny_bundle, threads=2)
    texts = [f"where is card {i}" for i in range(40)]
    assert [r.label for r in parallel.classify(texts)] == [r.label for r in classifier.classify(texts)]
    assert len(parallel._parallel_sessions) == 2
    assert all(s.get_session_options().intra_op_num_threads == 1 for s in parallel._parallel_sessions)


def test_inference_imports_no_torch_transformers_or_sklearn(tiny_bundle: Path):
    code = (
        "import sys; from categorizer.engine import Classifier; "
        f"c = Classifier.from_path({str(tiny_bundle)!r}, threads=1); c.classify(['lost card']); "
        "bad = [m for m in ('torch', 'transformers', 'sklearn', 'sentence_transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
