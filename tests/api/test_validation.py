"""Bad input through the real handler: always a 4xx in the one error shape, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Api, Cognito, assert_error

GOOD_TEXT = "When will my new card arrive?"

# name -> (body, expected status, expected code)
BAD_CLASSIFY_BODIES = {
    "too many texts": ({"texts": [GOOD_TEXT] * 257}, 422, "validation_error"),
    "too long text": ({"texts": ["x" * 10_001]}, 422, "validation_error"),
    "too long single text": ({"text": "x" * 10_001}, 422, "validation_error"),
    "no texts": ({"texts": []}, 422, "validation_error"),
    "neither text nor texts": ({"top_k": 2}, 422, "validation_error"),
    "both text and texts": ({"text": GOOD_TEXT, "texts": [GOOD_TEXT]}, 422, "validation_error"),
    "texts is a string": ({"texts": GOOD_TEXT}, 422, "validation_error"),
    "a text is a number": ({"texts": [GOOD_TEXT, 42]}, 422, "validation_error"),
    "a text is null": ({"texts": [None]}, 422, "validation_error"),
    "a text is an object": ({"texts": [{"text": GOOD_TEXT}]}, 422, "validation_error"),
    "empty text": ({"texts": [""]}, 422, "validation_error"),
    "top_k as a string": ({"texts": [GOOD_TEXT], "top_k": "3"}, 422, "validation_error"),
    "top_k as a bool": ({"texts": [GOOD_TEXT], "top_k": True}, 422, "validation_error"),
    "top_k as a float": ({"texts": [GOOD_TEXT], "top_k": 2.5}, 422, "validation_error"),
    "top_k zero": ({"texts": [GOOD_TEXT], "top_k": 0}, 422, "validation_error"),
    "huge top_k": ({"texts": [GOOD_TEXT], "top_k": 10**30}, 422, "validation_error"),
    "top_k above the schema's 20": ({"texts": [GOOD_TEXT], "top_k": 21}, 422, "validation_error"),
    "whitespace-only single text": ({"text": " \t\n"}, 422, "validation_error"),
    "explicit null text beside texts": ({"texts": [GOOD_TEXT], "text": None}, 422, "validation_error"),
    "extra field": ({"texts": [GOOD_TEXT], "model": "other"}, 422, "validation_error"),
    "body is a list": ([GOOD_TEXT], 422, "validation_error"),
    "body is null": (None, 422, "validation_error"),
    "body is a number": (3, 422, "validation_error"),
    "not JSON": ("texts=hello", 422, "validation_error"),
    "truncated JSON": ('{"texts": ["a"', 422, "validation_error"),
    "NaN top_k": ('{"texts": ["a"], "top_k": NaN}', 422, "validation_error"),
    "deeply nested JSON": ("[" * 100_000 + "]" * 100_000, 400, "bad_request"),
}


@pytest.mark.parametrize("case", BAD_CLASSIFY_BODIES)
def test_bad_classify_bodies_are_4xx_with_a_reason(api: Api, api_env: Cognito, case: str) -> None:
    body, status, code = BAD_CLASSIFY_BODIES[case]
    text = body if isinstance(body, str) else json.dumps(body)

    error = assert_error(api.call("classify", token=api_env.machine_token(), body=text), status, code)

    if code == "validation_error":
        assert error["details"] and all({"loc", "message", "type"} == set(p) for p in error["details"])


def test_whitespace_text_is_422_naming_the_index(api: Api, api_env: Cognito) -> None:
    body = {"texts": [GOOD_TEXT, "   \n\t ", GOOD_TEXT, "\u3000\x1c"]}

    error = assert_error(api.call("classify", token=api_env.machine_token(), body=body), 422, "validation_error")

    assert [problem["loc"] for problem in error["details"]] == [["body", "texts", 1], ["body", "texts", 3]]


def test_top_k_above_the_label_count_returns_every_label(api: Api, api_env: Cognito) -> None:
    response = api.call("classify", token=api_env.machine_token(), body={"texts": [GOOD_TEXT], "top_k": 20})

    assert response.status == 200, response.body
    [prediction] = response.json["predictions"]
    assert sorted(s["label"] for s in prediction["top_k"]) == ["card_arrival", "exchange_rate", "lost_or_stolen_card"]


def test_limits_at_the_edge_are_accepted(api: Api, api_env: Cognito) -> None:
    body = {"texts": ["card " * 2_000] + [GOOD_TEXT] * 255, "top_k": 3}

    response = api.call("classify", token=api_env.machine_token(), body=body)

    assert response.status == 200, response.body[:300]
    assert len(response.json["predictions"]) == 256
    assert response.json["predictions"][0]["truncated"] is True


def test_odd_but_valid_text_is_classified(api: Api, api_env: Cognito) -> None:
    texts = ["nul\x00byte", "emoji 💳🔥", "RTL שלום عربي", "e\u0301 NFD", "\ufeffBOM first"]

    response = api.call("classify", token=api_env.machine_token(), body={"texts": texts})

    assert response.status == 200, response.body
    assert len(response.json["predictions"]) == len(texts)


def test_oversized_body_is_413(api: Api, api_env: Cognito) -> None:
    body = json.dumps({"texts": ["x" * 9_000] * 120})  # ~1.08 MB > the 1 MiB default

    response = api.call("classify", token=api_env.machine_token(), body=body)

    error = assert_error(response, 413, "body_too_large")
    assert error["details"] == {"max_bytes": 1_048_576}


def test_oversized_body_without_a_content_length_is_413(api: Api, api_env: Cognito) -> None:
    event = api.event("classify", token=api_env.machine_token(), body=json.dumps({"texts": ["x" * 9_000] * 120}))
    for headers in (event.get("headers"), event.get("multiValueHeaders")):
        for name in [n for n in headers or {} if n.lower() == "content-length"]:
            del headers[name]

    assert_error(api.invoke(event), 413, "body_too_large")


def test_a_lying_small_content_length_does_not_get_past_the_limit(api: Api, api_env: Cognito) -> None:
    response = api.call("classify", token=api_env.machine_token(),
                        body=json.dumps({"texts": ["x" * 9_000] * 120}), headers={"Content-Length": "10"})

    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize("raw", [b'{"texts": ["\xff\xfe caf\xe9"]}', b"\x80\x81\x82", b"\xef\xbb\xbf\xff"])
def test_invalid_utf8_bodies_are_4xx(api: Api, api_env: Cognito, raw: bytes) -> None:
    response = api.call("classify", token=api_env.machine_token(), raw_body=raw)

    assert_error(response, 400, "bad_request")


def test_a_body_that_is_not_json_content_type_is_422(api: Api, api_env: Cognito) -> None:
    response = api.call("classify", token=api_env.machine_token(), body=json.dumps({"texts": [GOOD_TEXT]}),
                        headers={"Content-Type": "text/plain"})

    assert_error(response, 422, "validation_error")


BAD_FEEDBACK_BODIES = {
    "missing correct_label": {"prediction_id": "p1", "text": "t", "predicted_label": "card_arrival"},
    "bad prediction id": {"prediction_id": "../../etc", "text": "t", "predicted_label": "card_arrival",
                          "correct_label": "card_arrival"},
    "too long text": {"prediction_id": "p1", "text": "x" * 10_001, "predicted_label": "card_arrival",
                      "correct_label": "card_arrival"},
    "label is a list": {"prediction_id": "p1", "text": "t", "predicted_label": ["card_arrival"],
                        "correct_label": "card_arrival"},
    "extra field": {"prediction_id": "p1", "text": "t", "predicted_label": "card_arrival",
                    "correct_label": "card_arrival", "user": "admin"},
    "too long comment": {"prediction_id": "p1", "text": "t", "predicted_label": "card_arrival",
                         "correct_label": "card_arrival", "comment": "c" * 2_001},
}


@pytest.mark.parametrize("case", BAD_FEEDBACK_BODIES)
def test_bad_feedback_bodies_are_422(rest_api: Api, api_env: Cognito, case: str) -> None:
    response = rest_api.call("feedback", token=api_env.machine_token(), body=BAD_FEEDBACK_BODIES[case])

    assert_error(response, 422, "validation_error")
