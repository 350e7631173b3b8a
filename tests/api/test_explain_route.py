"""POST /v1/classify with `explain`: the words behind each decision, exact substrings; off by default."""

from __future__ import annotations

from categorizer.api.schemas import MAX_EXPLAIN_TEXTS
from tests.api.conftest import Api, Cognito, assert_error

TEXTS = ["  When will my new card arrive?", "What exchange rate do you use?"]


def test_explain_adds_words_for_the_label_and_the_runner_up(api: Api, api_env: Cognito):
    response = api.call("classify", token=api_env.machine_token(), body={"texts": TEXTS, "explain": True})

    assert response.status == 200, response.body
    for text, prediction in zip(TEXTS, response.json["predictions"], strict=True):
        for key in ("explanation", "explanation_runner_up"):
            spans = prediction[key]
            assert isinstance(spans, list) and len(spans) <= 5
            assert all(span["text"] in text and span["weight"] > 0 for span in spans)
        assert prediction["explanation"], "some word supports the predicted label"


def test_without_explain_there_is_no_explanation(api: Api, api_env: Cognito):
    response = api.call("classify", token=api_env.machine_token(), body={"texts": TEXTS})
    assert response.status == 200
    assert all(p["explanation"] is None and p["explanation_runner_up"] is None
               for p in response.json["predictions"])


def test_explain_is_capped_per_request(api: Api, api_env: Cognito):
    body = {"texts": ["my card"] * (MAX_EXPLAIN_TEXTS + 1), "explain": True}
    error = assert_error(api.call("classify", token=api_env.machine_token(), body=body), 422, "validation_error")
    assert f"at most {MAX_EXPLAIN_TEXTS}" in error["message"]
    assert_error(api.call("classify", token=api_env.machine_token(), body={"text": "card", "explain": "yes"}), 422,
                 "validation_error")
