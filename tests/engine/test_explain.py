"""Explanations: exact substrings of the submitted text, strongest first, faithful to the model, deterministic."""

from __future__ import annotations

import unicodedata

import pytest

from categorizer.engine import Classifier
from categorizer.engine.classifier import normalize_text, run_one
from categorizer.engine.explain import MAX_SPANS, locate, occluded_ids, words_of

TEXTS = ["I still have not received my new card, it has been two weeks",
         "  What is the exchange rate for euros?  ",
         unicodedata.normalize("NFD", "Café: is the rate for € better on weekdays?"),
         "card"]


@pytest.fixture(scope="module")
def engine(default_bundle) -> Classifier:
    return Classifier.from_path(default_bundle, threads=1)


@pytest.mark.parametrize("text", TEXTS)
def test_spans_are_exact_substrings_strongest_first(engine: Classifier, text: str):
    explanation = engine.explain(text)
    (prediction,) = engine.classify([text])

    assert explanation.label == prediction.label and explanation.runner_up == prediction.top_k[1].label
    for spans in (explanation.spans, explanation.runner_up_spans):
        assert len(spans) <= MAX_SPANS
        assert all(span.text and span.text in text and span.weight > 0 for span in spans)
        assert [s.weight for s in spans] == sorted((s.weight for s in spans), reverse=True)
    assert explanation.spans, "some word must support the predicted label"


def test_deleting_the_top_word_lowers_the_label_more_than_any_other_word(engine: Classifier):
    text = "Is there a fee for topping up my account by card?"
    explanation = engine.explain(text)
    label_index = engine.labels.index(explanation.label)
    top = explanation.spans[0].text

    without_top = engine.probabilities([text.replace(top, "", 1)])[0][label_index]
    others = [w for w in text.split() if w.strip("?") != top and top not in w]
    without_other = [engine.probabilities([text.replace(w, "", 1)])[0][label_index] for w in others]

    assert without_top <= min(without_other) + 1e-6



@pytest.mark.parametrize("text", TEXTS[:3])
def test_each_word_is_weighed_by_the_text_without_it_classified_alone(engine: Classifier, text: str):
    """The variants run as any texts do (alone, or with others of their length, never padded): a word's weight
    is exactly the drop from the text's probability to that shorter text's own."""
    normalized = normalize_text(text)
    encoding = engine._tokenizer.encode(normalized)
    probs, _ = run_one(engine._session, encoding.ids)
    explanation = engine.explain(text)
    label = engine.labels.index(explanation.label)
    alone = {locate(text, normalized, word.start, word.end): probs[label] - run_one(engine._session, ids)[0][label]
             for word, ids in zip(words_of(encoding), occluded_ids(encoding.ids, words_of(encoding)), strict=True)}
    assert explanation.spans
    assert all(span.weight == round(float(alone[span.text]), 6) for span in explanation.spans)

def test_the_same_text_always_gets_the_same_explanation(engine: Classifier):
    first = engine.explain(TEXTS[0])
    engine.classify(TEXTS * 3)  # other work in between changes nothing
    assert engine.explain(TEXTS[0]) == first


def test_a_truncated_text_is_explained_by_what_the_model_read(engine: Classifier):
    text = "my card has not arrived " + "filler " * 400 + "exchange rate"
    explanation = engine.explain(text)
    assert all(span.text in text[:200] for span in explanation.spans)


def test_blank_and_one_word_texts(engine: Classifier):
    assert engine.explain("   ") is None
    one = engine.explain("refund")
    assert [s.text for s in one.spans] == ["refund"]


@pytest.mark.parametrize("threads", [1, 2])
def test_classify_with_explain_gives_the_same_explanation_from_its_own_forward_pass(default_bundle, threads: int):
    """The API path (classify(..., explain=True)) reuses the prediction's probabilities: same answer, one pass
    less. Any batch, any order, any thread count: the explanation is the text's own."""
    engine = Classifier.from_path(default_bundle, threads=threads)
    batch = [*TEXTS, "  ", *reversed(TEXTS)]

    results = engine.classify(batch, explain=True)

    for text, result in zip(batch, results, strict=True):
        if not text.strip():
            assert not hasattr(result, "explanation")  # a TextError: nothing to explain
            continue
        assert result.explanation == engine.explain(text)
        assert result == engine.classify([text], explain=True)[0]
    assert all(p.explanation is None for p in engine.classify(TEXTS))  # off by default: no extra work
