"""The web console's routes through the real Lambda handler: the page and its security headers, the public
config, presigned uploads scoped to the caller, recent files, download links, model report, history, ops."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import urllib.request
from html.parser import HTMLParser

import boto3
import pytest

from categorizer.api.app import create_app
from categorizer.contract import ApiSettings, SettingsError
from tests.api.conftest import REGION, Api, assert_error, services_for

INGEST_BUCKET = "console-test-ingest"
RESULTS_BUCKET = "console-test-results"


@pytest.fixture(scope="session")
def console_buckets(moto_endpoint: str) -> str:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    for bucket in (INGEST_BUCKET, RESULTS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    return moto_endpoint


@pytest.fixture
def api_config(api_config: ApiSettings, api_env, console_buckets) -> ApiSettings:
    """The API's settings with the console's buckets and people client."""
    return dataclasses.replace(api_config, ingest_bucket=INGEST_BUCKET, results_bucket=RESULTS_BUCKET,
                               console_client_id=api_env.people_client_id, upload_max_bytes=4096,
                               cognito_endpoint=api_env.endpoint)  # the emulator, as on the local stack


@pytest.fixture
def console_env(api_env, api_config: ApiSettings):
    return api_env


def _s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_handlers: list[str] = []
        self._in_script = False
        self.script_text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.inline_handlers += [name for name in attributes if name.startswith("on")]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data.strip()


# ---------------------------------------------------------------------------------------------- the page
def test_console_page_has_strict_headers_and_no_inline_script(console_env, api: Api):
    response = api.call("console", path="/console/", method="GET")
    assert response.status == 200, response.body[:300]
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The page may talk to Cognito (the emulator here) and to the upload bucket's endpoint, nothing else.
    assert directives["connect-src"].split() == ["'self'", console_env.endpoint]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    parser = _Scripts()
    parser.feed(response.body.decode())
    assert parser.scripts == [{"type": "module", "src": "app.js"}]
    assert parser.script_text == "" and parser.inline_handlers == []


@pytest.mark.parametrize(("name", "media_type"), [("app.js", "text/javascript"), ("app.css", "text/css")])
def test_console_assets_are_served_with_their_type(console_env, rest_api: Api, name: str, media_type: str):
    response = rest_api.call("console", path=f"/console/{name}", method="GET")
    assert response.status == 200
    assert response.headers["content-type"].startswith(media_type)
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize("name", ["index.htm", "..%2Fapi%2Fapp.py", "app.py", "config.js"])
def test_only_the_listed_assets_are_reachable(console_env, rest_api: Api, name: str):
    assert_error(rest_api.call("console", path=f"/console/{name}", method="GET"), 404)


def test_console_without_slash_redirects_relative(console_env, rest_api: Api):
    response = rest_api.call("console", path="/console", method="GET")
    assert response.status == 308
    assert response.headers["location"] == "console/"


def test_no_inline_html_writes_in_the_script(console_env, rest_api: Api):
    """Every string reaches the page through textContent; the module never parses HTML."""
    script = rest_api.call("console", path="/console/app.js", method="GET").body.decode()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", script)
    assert "localStorage" not in script and "sessionStorage" not in script and "document.cookie" not in script


def test_config_is_public_and_names_the_people_client(console_env, rest_api: Api):
    response = rest_api.call("console", path="/console/config.json", method="GET")
    assert response.status == 200
    config = response.json
    assert config["client_id"] == console_env.people_client_id
    assert config["cognito_endpoint"] == console_env.endpoint
    assert config["user_pool_id"] == console_env.pool_id


# ---------------------------------------------------------------------------------------------- files
def _policy(form: dict) -> dict:
    return json.loads(base64.b64decode(form["fields"]["policy"]))


def test_upload_needs_a_token(console_env, rest_api: Api):
    response = rest_api.call("classify", path="/v1/files/uploads", body={"filename": "a.csv"})
    assert_error(response, 401)


def test_upload_form_is_scoped_to_the_callers_prefix_and_size_limited(console_env, api: Api):
    token = console_env.access_token("alice")
    sub = _sub(token)
    response = api.call("classify", path="/v1/files/uploads", token=token,
                        body={"filename": "q3/<img src=x onerror=alert(1)>.csv"})
    assert response.status == 201, response.body
    form = response.json
    # A slash cannot open another folder: the name stays one key segment below the server-made upload id.
    assert re.fullmatch(rf"ingest/{sub}/\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}/q3_<img src=x onerror=alert\(1\)>\.csv",
                        form["key"]), form["key"]
    conditions = _policy(form)["conditions"]
    assert ["content-length-range", 1, 4096] in conditions
    assert {"key": form["key"]} in conditions
    assert form["fields"]["key"] == form["key"]
    assert form["expires_in"] == 300


@pytest.mark.parametrize("filename", ["notes.exe", ".hidden.csv", "a\nb.csv", "../../results/x.csv"])
def test_upload_refuses_names_that_cannot_be_processed(console_env, rest_api: Api, filename: str):
    response = rest_api.call("classify", path="/v1/files/uploads",
                             token=console_env.access_token("alice"), body={"filename": filename})
    assert_error(response, 422)


def test_recent_files_and_links_are_per_user(console_env, rest_api: Api):
    alice = console_env.access_token("alice")
    form = rest_api.call("classify", path="/v1/files/uploads", token=alice,
                         body={"filename": "tickets.csv"}).json
    _post_form(form, b"text\nmy card has not arrived\n")
    upload_id = form["upload_id"]

    listed = rest_api.call("files", path="/v1/files", method="GET", token=alice).json["files"]
    mine = next(f for f in listed if f["upload_id"] == upload_id)
    assert (mine["name"], mine["status"], mine["size"]) == ("tickets.csv", "processing", 29)

    # What the batch function writes for ingest/<sub>/<id>/tickets.csv.
    base = f"results/{_sub(alice)}/{upload_id}/"
    s3 = _s3(console_env.endpoint)
    s3.put_object(Bucket=RESULTS_BUCKET, Key=base + "tickets.csv", Body=b"text,predicted_label\nx,card_arrival\n")
    s3.put_object(Bucket=RESULTS_BUCKET, Key=base + "tickets.manifest.json", Body=json.dumps({
        "status": "succeeded", "rows_in": 1, "rows_classified": 1, "rows_rejected": 0, "needs_review": 0,
        "counts": {"card_arrival": 1}, "model_version": "v1",
        "outputs": {"results": base + "tickets.csv"}}).encode())

    detail = rest_api.call("files", path=f"/v1/files/{upload_id}", method="GET", token=alice).json
    assert detail["status"] == "succeeded" and detail["counts"] == {"card_arrival": 1}
    assert detail["links"]["errors"] is None  # no error report was written
    with urllib.request.urlopen(detail["links"]["results"]) as download:  # noqa: S310 - moto on loopback
        assert download.read() == b"text,predicted_label\nx,card_arrival\n"
        assert "attachment" in download.headers["Content-Disposition"]

    bob = console_env.access_token("bob")
    assert all(f["upload_id"] != upload_id for f in
               rest_api.call("files", path="/v1/files", method="GET", token=bob).json["files"])
    assert_error(rest_api.call("files", path=f"/v1/files/{upload_id}", method="GET", token=bob), 404)


def test_file_detail_refuses_a_malformed_id(console_env, rest_api: Api):
    response = rest_api.call("files", path="/v1/files/..%2F..%2Fother", method="GET",
                             token=console_env.access_token("alice"))
    assert response.status in (404, 422)


def test_the_api_does_not_start_without_an_ingest_bucket(api_config: ApiSettings):
    """A deployment without the console's buckets fails at cold start naming the variable, not per request."""
    env = api_config.to_env()
    del env["INGEST_BUCKET"]
    with pytest.raises(SettingsError, match="INGEST_BUCKET is not set"):
        ApiSettings.from_env(env)


def _post_form(form: dict, content: bytes) -> None:
    boundary = "----categorizer-test"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in form["fields"].items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
                 f"Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(form["url"], data=body, method="POST",  # noqa: S310 - moto on loopback
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request) as response:  # noqa: S310
        assert response.status in (200, 201, 204)


def _sub(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


# ---------------------------------------------------------------------------------------------- model, ops
def test_model_report_and_plots(console_env, rest_api: Api):
    token = console_env.access_token("bob")
    report = rest_api.call("model", path="/v1/model/report", method="GET", token=token).json
    labels = {row["label"] for row in report["per_class"]}
    assert labels == {"card_arrival", "exchange_rate", "lost_or_stolen_card"}
    assert all(0 <= row["f1"] <= 1 for row in report["per_class"])
    assert set(report["images"]) == {"confusion.png", "reliability.png"}
    image = rest_api.call("model", path="/v1/model/report/confusion.png", method="GET", token=token)
    assert image.status == 200 and image.body.startswith(b"\x89PNG")
    assert_error(rest_api.call("model", path="/v1/model/report/metrics.json", method="GET", token=token), 404)
    assert_error(rest_api.call("model", path="/v1/model/report/confusion.png", method="GET"), 401)


def test_history_says_when_no_registry_is_configured(console_env, rest_api: Api):
    history = rest_api.call("model", path="/v1/model/history", method="GET",
                            token=console_env.access_token("bob")).json
    assert history["available"] is False and "no registry" in history["reason"]


def test_ops_counts_feedback_disagreement(console_env, rest_api: Api):
    alice = console_env.access_token("alice")
    predicted = rest_api.call("classify", token=alice, body={"texts": ["where is my card?"]}).json
    prediction = predicted["predictions"][0]
    other = next(label for label in ("card_arrival", "exchange_rate") if label != prediction["label"])
    sent = rest_api.call("feedback", token=alice, body={
        "prediction_id": prediction["prediction_id"], "text": "where is my card?",
        "predicted_label": prediction["label"], "correct_label": other})
    assert sent.status == 201
    ops = rest_api.call("ops", path="/v1/ops", method="GET", token=alice).json
    assert ops["feedback"]["available"] is True
    assert ops["feedback"]["total"] >= 1 and 0 < ops["feedback"]["disagreement_rate"] <= 1
    assert {"from": prediction["label"], "to": other, "count": 1} in ops["feedback"]["top_corrections"] or \
        any(c["from"] == prediction["label"] and c["to"] == other for c in ops["feedback"]["top_corrections"])
    assert [item["what"] for item in ops["not_available"]]


def test_history_lists_recorded_decisions_newest_first(console_env, api_config, serving_store, lambda_context):
    from categorizer.adapters.champion_parameter import ChampionParameter
    from categorizer.adapters.model_registry_bucket import ModelBucket
    from categorizer.api.lambda_adapter import lambda_handler_for
    from categorizer.registry.records import Action, Decision
    from categorizer.registry.store import ModelRegistry

    bucket, parameter = "console-test-models", "/categorizer/test/champion"
    _s3(console_env.endpoint).create_bucket(Bucket=bucket)
    with_registry = dataclasses.replace(api_config, model=dataclasses.replace(
        api_config.model, model_bucket=bucket, champion_parameter=parameter))
    rest_api = Api(lambda_handler_for(create_app(with_registry, services=services_for(with_registry, serving_store))),
                   lambda_context, "rest_v1")
    registry = ModelRegistry(ModelBucket(bucket), ChampionParameter(parameter))
    registry.record(Decision(action=Action.REJECTED, version="v2", previous_champion="v1", actor="promote-function",
                             reasons=("macro-F1 dropped 0.031 (> 0.000)",), at="2026-11-01T10:00:00.000000Z"))
    registry.record(Decision(action=Action.REJECTED, version="v3", previous_champion="v1", actor="promote-function",
                             reasons=("<b>not bold</b>",), at="2026-11-02T10:00:00.000000Z"))

    history = rest_api.call("model", path="/v1/model/history", method="GET",
                            token=console_env.access_token("bob")).json
    assert history["available"] is True
    assert history["champion"] is None  # no parameter yet: said, not invented
    assert [(d["action"], d["version"]) for d in history["decisions"]] == [("rejected", "v3"), ("rejected", "v2")]
    assert history["decisions"][1]["reasons"] == ["macro-F1 dropped 0.031 (> 0.000)"]
