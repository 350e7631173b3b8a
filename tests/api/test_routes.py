"""The routes through the real Lambda handler, with REST (v1) and HTTP API (v2) events and a stage prefix."""

from __future__ import annotations

import json

from categorizer import model_store
from categorizer.observability import logger
from tests.api.conftest import Api, Cognito, assert_error

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card"]


def test_health_needs_no_token_and_names_the_model(api: Api, serving_store) -> None:
    response = api.call("health")

    assert response.status == 200
    assert response.json == {"status": "ok", "model_version": serving_store.get().version}
    assert response.headers["content-type"] == "application/json"


def test_classify_returns_one_prediction_per_text_in_order(api: Api, api_env: Cognito, serving_store) -> None:
    texts = ["When will my new card arrive?", "What exchange rate do you use?", "Someone stole my card"]

    response = api.call("classify", token=api_env.machine_token(), body={"texts": texts, "top_k": 2})

    assert response.status == 200, response.body
    body = response.json
    assert body["model_version"] == serving_store.get().version
    predictions = body["predictions"]
    assert [p["label"] for p in predictions] == LABELS[:1] + LABELS[1:2] + LABELS[2:]
    assert len({p["prediction_id"] for p in predictions}) == 3
    for prediction in predictions:
        assert set(prediction) == {"prediction_id", "label", "confidence", "top_k", "needs_review", "truncated",
                                   "out_of_scope", "novelty", "explanation", "explanation_runner_up"}
        assert len(prediction["top_k"]) == 2
        assert prediction["top_k"][0] == {"label": prediction["label"], "score": prediction["confidence"]}
        assert prediction["truncated"] is False


def test_classify_accepts_a_single_text(api: Api, api_env: Cognito) -> None:
    response = api.call("classify", token=api_env.access_token("bob"), body={"text": "Someone stole my card"})

    assert response.status == 200, response.body
    [prediction] = response.json["predictions"]
    assert prediction["label"] == "lost_or_stolen_card"
    assert len(prediction["top_k"]) == 3


def test_classify_matches_the_engine(api: Api, api_env: Cognito, serving_store) -> None:
    text = "I ordered a card two weeks ago and it is not here"
    [expected] = serving_store.get().classify([text], top_k=3)

    [prediction] = api.call("classify", token=api_env.machine_token(), body={"texts": [text]}).json["predictions"]

    assert prediction["label"] == expected.label
    assert prediction["confidence"] == expected.confidence
    assert prediction["needs_review"] == expected.needs_review
    assert prediction["out_of_scope"] is expected.out_of_scope is False
    assert prediction["novelty"] == expected.novelty > 0


def test_a_foreign_topic_is_out_of_scope_and_needs_review(api: Api, api_env: Cognito, serving_store) -> None:
    texts = ["When will my new card arrive?", "how many legs does a spider have"]
    expected = serving_store.get().classify(texts)

    in_scope, foreign = api.call("classify", token=api_env.machine_token(), body={"texts": texts}).json["predictions"]

    assert (in_scope["out_of_scope"], foreign["out_of_scope"]) == (False, True)
    assert foreign["needs_review"] is True
    assert foreign["novelty"] == expected[1].novelty > serving_store.get().out_of_scope_threshold > in_scope["novelty"]


def test_model_route_describes_the_serving_model(api: Api, api_env: Cognito, serving_store) -> None:
    classifier = serving_store.get()

    response = api.call("model", token=api_env.access_token("alice"))

    assert response.status == 200, response.body
    body = response.json
    assert body["model_version"] == classifier.version
    assert body["labels"] == LABELS
    assert body["review_threshold"] == classifier.review_threshold
    assert body["out_of_scope_threshold"] == classifier.out_of_scope_threshold is not None
    assert body["max_tokens"] == classifier.max_tokens
    assert body["metrics"] == classifier.bundle.metrics
    assert body["metrics"], "the bundle records evaluation metrics"


def test_the_model_is_loaded_once_and_reused(api_config, api_services, lambda_context, api_env: Cognito) -> None:
    import dataclasses

    from categorizer.api.app import create_app
    from categorizer.api.lambda_adapter import lambda_handler_for

    store = model_store.ModelStore(api_config.model)  # a fresh store: nothing loaded yet
    services = dataclasses.replace(api_services, models=store)
    api = Api(lambda_handler_for(create_app(api_config, services=services)), lambda_context, "rest_v1")
    assert api.call("classify", token=api_env.machine_token(), body={"text": "card?"}).status == 200
    first = store.get()
    for _ in range(3):
        assert api.call("classify", token=api_env.machine_token(), body={"text": "card?"}).status == 200
    assert store.get() is first


def test_openapi_and_docs_are_served_under_the_stage_prefix(api: Api) -> None:
    spec = api.call("openapi", path="/openapi.json", method="GET")
    docs = api.call("docs", path="/docs", method="GET")

    assert spec.status == 200
    document = spec.json
    assert document["servers"] == [{"url": "/prod"}]
    assert {"/v1/health", "/v1/classify", "/v1/feedback", "/v1/model"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert docs.status == 200
    assert "/prod/openapi.json" in docs.body.decode()


def test_unknown_routes_and_methods_answer_in_the_error_shape(api: Api, api_env: Cognito) -> None:
    assert_error(api.call("nothing", path="/v1/nothing", method="GET"), 404, "not_found")
    assert_error(api.call("classify", method="GET", token=api_env.machine_token()), 405, "method_not_allowed")


def test_the_request_id_is_the_correlation_id_and_metrics_flush_per_call(api: Api, api_env: Cognito,
                                                                          capsys) -> None:
    texts = ["When will my new card arrive?", "hello there", "how many legs does a spider have"]
    response = api.call("classify", token=api_env.machine_token(), body={"texts": texts})
    assert response.status == 200

    assert logger.get_correlation_id() == api.last_event["requestContext"]["requestId"]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [emf] = [line for line in emitted if "_aws" in line]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Predictions", "LowConfidencePredictions", "OutOfScopePredictions"} <= names
    assert emf["Predictions"] == [3.0]
    needs_review = sum(p["needs_review"] for p in response.json["predictions"])
    assert emf["LowConfidencePredictions"] == [float(needs_review)]
    out_of_scope = sum(p["out_of_scope"] for p in response.json["predictions"])
    assert out_of_scope >= 1 and emf["OutOfScopePredictions"] == [float(out_of_scope)]


def test_no_model_is_503_in_the_error_shape(api_config, api_services, lambda_context) -> None:
    """The champion pointer cannot be read (no parameter yet) and nothing was loaded before: 503, not 500."""
    import dataclasses

    from categorizer.api.app import create_app
    from categorizer.api.lambda_adapter import lambda_handler_for
    from categorizer.contract import ModelSource

    unpublished = ModelSource(model_bucket="no-such-bucket", champion_parameter="/categorizer/test/no-champion")
    services = dataclasses.replace(api_services, models=model_store.ModelStore(unpublished))
    api = Api(lambda_handler_for(create_app(api_config, services=services)), lambda_context, "rest_v1")

    response = api.call("health")

    assert_error(response, 503, "model_unavailable")
    assert response.headers["retry-after"] == "1"
