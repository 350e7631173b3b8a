"""Issue 6's "done when", end to end on the emulator (moto server), with the default BANKING77 model.

The pair: declined_transfer vs declined_card_payment. The default model already confuses them (declined
transfers are its third-worst class: 70% recall, and the largest share of its errors goes to declined card
payments). The drift: this bank's customers call transfers "zaps" ("my zap was declined"), a word the model
has never seen, so it now gets most declined transfers wrong. Users correct those predictions through the
API (real Cognito tokens, the real FastAPI app). A retrain with the champion's recipe (`fast` for the
default model) runs as the local SageMaker job. The candidate must gain >= 20 points on the pair's held-out
items in the new wording (BANKING77 test items, never trained on) and be promoted; the API must serve it
within max_age, without a restart and without a failed request. Then garbage feedback (labels shuffled)
trains a candidate that the gate must reject.

The gate runs with a hold-out macro-F1 tolerance of 0.002 (PROMOTION_MACRO_F1_TOLERANCE): re-quantizing the
retrained head to int8 flips one to three of the 3,080 hold-out items either way; see MACRO_F1_NOISE.

Slow (two trainings on 10k texts, about five minutes on two shared cores); part of `make test`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from categorizer.api.app import create_app
from categorizer.contract import ApiSettings, Identity, ModelSource
from categorizer.contract.names import FEEDBACK_TABLE
from categorizer.engine import Classifier
from categorizer.observability import metrics
from categorizer.registry.evaluation import LabelledTexts, evaluate
from categorizer.registry.records import Action
from categorizer.registry.store import ModelRegistry
from categorizer.registry.training_data import upload_training_data
from categorizer_cli.local.sagemaker_job import run_training_job
from tests.learning.support import BUCKET, PARAMETER, REGION, TABLE, reset_learning_functions, use_learning_functions
from tests.support.network import free_port
from tests.support.paths import BANKING77

PAIR = ("declined_transfer", "declined_card_payment")
NEW_WORD = "zap"
PASSWORD = "Corr3ct-Horse-Battery!"
MAX_AGE_SECONDS = 3
SHUFFLED_ITEMS = 200
MACRO_F1_NOISE = 0.002


def in_new_wording(text: str) -> str:
    """Customers say "zap" for a transfer (and "zapped", "zapping", "zaps")."""
    text = re.sub(r"\btransferr?(ed|ing)\b", lambda m: NEW_WORD + ("ped" if m.group(1) == "ed" else "ping"),
                  text, flags=re.IGNORECASE)
    return re.sub(r"\btransfers?\b", lambda m: NEW_WORD + ("s" if m.group(0).lower().endswith("s") else ""),
                  text, flags=re.IGNORECASE)


def read_rows(name: str) -> list[tuple[str, str]]:
    with (BANKING77 / name).open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def recipe_of(bundle_dir: Path) -> str:
    """Retrain with the champion's own recipe, so the gate compares like with like."""
    recipe = json.loads((bundle_dir / "manifest.json").read_text()).get("recipe", {})
    plain_head = not recipe.get("fine_tune_epochs") and not recipe.get("sparse_head_weight")
    return "fast" if plain_head else "full"



@dataclass
class Deployment:
    endpoint: str
    api: TestClient
    token: str
    registry: ModelRegistry
    job_prefix: str

    def classify(self, texts: list[str]) -> tuple[str, list[dict]]:
        predictions, version = [], ""
        for start in range(0, len(texts), 200):
            answer = self.api.post("/v1/classify", json={"texts": texts[start:start + 200]},
                                   headers={"Authorization": f"Bearer {self.token}"})
            assert answer.status_code == 200, answer.text
            predictions += answer.json()["predictions"]
            version = answer.json()["model_version"]
        return version, predictions

    def correct(self, text: str, prediction: dict, label: str, *, key: str | None = None) -> None:
        answer = self.api.post("/v1/feedback", json={
            "prediction_id": prediction["prediction_id"], "text": text, "predicted_label": prediction["label"],
            "correct_label": label}, headers={"Authorization": f"Bearer {self.token}",
                                              **({"Idempotency-Key": key} if key else {})})
        assert answer.status_code == 201, answer.text

    def retrain(self, when: datetime, lambda_context) -> dict:
        """What `categorizer retrain` does on the local stack: the schedule's handler, then the local job."""
        from categorizer.handlers.start_training import handler

        metrics.clear_metrics()  # the API's metrics (never flushed by TestClient) stay out of the handlers'
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
                 "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{self.job_prefix}-retrain"],
                 "detail": {}}
        started = handler(event, lambda_context)
        assert started["status"] == "started", started
        outcome = run_training_job(started["job_name"])
        assert outcome["status"] == "Completed", outcome["log_tail"]
        return {"start": started, **outcome}


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, default_bundle: Path) -> Iterator[Deployment]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    suffix = uuid.uuid4().hex[:8]  # moto's state is process-wide: names of our own
    names = {"bucket": f"{BUCKET}-{suffix}", "table": f"{TABLE}-{suffix}", "parameter": f"{PARAMETER}-{suffix}",
             "prefix": f"categorizer-s{suffix}"}
    idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=REGION)
    pool = idp.create_user_pool(PoolName=f"scenario-{suffix}")["UserPool"]["Id"]
    people = idp.create_user_pool_client(UserPoolId=pool, ClientName="people",
                                         ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
    for group in ("classify", "feedback"):
        idp.create_group(UserPoolId=pool, GroupName=group)
    idp.admin_create_user(UserPoolId=pool, Username="agent", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username="agent", Password=PASSWORD, Permanent=True)
    for group in ("classify", "feedback"):
        idp.admin_add_user_to_group(UserPoolId=pool, Username="agent", GroupName=group)
    token = idp.initiate_auth(ClientId=people, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={
        "USERNAME": "agent", "PASSWORD": PASSWORD})["AuthenticationResult"]["AccessToken"]

    # Only the endpoint and credentials come from the environment (boto3 reads them); the functions get typed
    # settings, built as infra builds them for the dev stage, with this deployment's own resource names.
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    own = {"model_bucket": names["bucket"], "champion_parameter": names["parameter"], "feedback_table": names["table"],
           "training_job_prefix": names["prefix"], "onnx_threads": 2}
    start, decide = use_learning_functions(
        tmp_path / "cache", min_new_feedback=20, training_recipe=recipe_of(default_bundle),
        # Every retrain re-quantizes the head to int8: hold-out predictions of classes the feedback never
        # touched flip by +-1..3 items of 3,080 (+-0.001 macro-F1); the stage default allows this much.
        promotion_macro_f1_tolerance=MACRO_F1_NOISE)
    start = dataclasses.replace(start, **own, training_source_uri=f"s3://{names['bucket']}/training/source/sourcedir.tar.gz")
    decide = dataclasses.replace(decide, **own)
    from categorizer.handlers import promote, start_training

    try:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=names["bucket"])
        boto3.client("dynamodb", region_name=REGION).create_table(**FEEDBACK_TABLE.create_table_kwargs(names["table"]))
        boto3.client("ssm", region_name=REGION).put_parameter(Name=names["parameter"], Value="none",
                                                              Type="String")
        start_training.dependencies.override(start_training.build_dependencies(start))
        promote.dependencies.override(promote.build_dependencies(decide))
        registry = ModelRegistry.from_settings(decide)
        # Deploy time: base data + fixed hold-out, the training source archive, the default model as champion.
        upload_training_data(registry.bucket, training_prefix="training/", base_files=[BANKING77 / "train.csv"],
                             holdout_files=[BANKING77 / "test.csv"])
        monkeypatch.setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        from infra.bundling import write_training_source

        registry.bucket.upload_file(write_training_source(tmp_path / "sourcedir.tar.gz"),
                                    "training/source/sourcedir.tar.gz")
        bundle_dir = default_bundle.resolve()
        registry.publish(bundle_dir, bundle_dir.with_name(f"{bundle_dir.name}.tar.gz"), actor="deploy")
        api_settings = ApiSettings(
            stage="dev", feedback_table=names["table"], ingest_bucket="unused", results_bucket="unused",
            model=ModelSource(model_bucket=names["bucket"], champion_parameter=names["parameter"], onnx_threads=2,
                              model_max_age_seconds=MAX_AGE_SECONDS, model_cache_dir=str(tmp_path / "serving")),
            identity=Identity(user_pool_id=pool, app_client_ids=(people,),
                              jwks_url=f"{endpoint}/{pool}/.well-known/jwks.json"))
        with TestClient(create_app(api_settings)) as api:
            yield Deployment(endpoint=endpoint, api=api, token=token, registry=registry, job_prefix=names["prefix"])
    finally:
        server.stop()
        reset_learning_functions()
        metrics.clear_metrics()


def slice_accuracy(classifier: Classifier, items: list[tuple[str, str]]) -> float:
    return evaluate(classifier, LabelledTexts([t for t, _ in items], [label for _, label in items])).accuracy


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_feedback_improves_the_model_and_garbage_feedback_is_rejected(deployment: Deployment, lambda_context,
                                                                      default_bundle: Path, tmp_path: Path):
    registry = deployment.registry
    champion_version = registry.champion_version()
    health = deployment.api.get("/v1/health")
    assert health.json() == {"status": "ok", "model_version": champion_version}

    # Held-out items of the pair in the new wording: BANKING77 test items (never trained on).
    held_out = [(in_new_wording(t), label) for t, label in read_rows("test.csv") if label in PAIR]
    slice_items = [(t, label) for t, label in held_out if NEW_WORD in t.lower()]
    champion = Classifier.from_path(default_bundle, threads=2)
    before = slice_accuracy(champion, slice_items)
    assert len(slice_items) >= 25 and before <= 0.6  # the default model errs on this slice

    # 1. Users correct the model's mistakes on declined "zaps" (BANKING77 train texts, in the new wording).
    texts = [in_new_wording(t) for t, label in read_rows("train.csv")
             if label == "declined_transfer" and NEW_WORD in in_new_wording(t).lower()]
    version, predictions = deployment.classify(texts)
    assert version == champion_version
    wrong = [(text, p) for text, p in zip(texts, predictions, strict=True) if p["label"] != "declined_transfer"]
    for text, prediction in wrong:
        deployment.correct(text, prediction, "declined_transfer")
    corrections = len(wrong)
    assert corrections >= 30

    # 2. Retrain (export, the fast recipe as a local SageMaker job, the promote handler).
    first = deployment.retrain(datetime(2026, 11, 23, 21, 0, tzinfo=UTC), lambda_context)
    decision = first["promotion"]["decision"]
    assert first["promotion"]["status"] == "promoted", json.dumps(decision, indent=1)
    candidate_version = decision["version"]
    assert registry.champion_version() == candidate_version
    candidate = Classifier(registry.fetch_bundle(candidate_version, tmp_path / "models"), threads=2)
    after = slice_accuracy(candidate, slice_items)
    assert after - before >= 0.20, (before, after)
    assert slice_accuracy(candidate, held_out) >= slice_accuracy(champion, held_out)  # the pair as a whole too

    # 3. The API serves the candidate within max_age, without a restart and without a failed request.
    promoted_at = time.monotonic()
    served_by = None
    while time.monotonic() - promoted_at < MAX_AGE_SECONDS + 5:
        version, answer = deployment.classify(["my zap was declined, why?"])
        if version == candidate_version:
            served_by = time.monotonic() - promoted_at
            assert answer[0]["label"] == "declined_transfer"
            break
        time.sleep(0.2)
    assert served_by is not None and served_by <= MAX_AGE_SECONDS + 1
    assert deployment.api.get("/v1/health").json()["model_version"] == candidate_version

    # 4. Garbage: corrections whose labels are shuffled. The candidate trained on them is rejected.
    rng = random.Random(6)
    sample = rng.sample([row for row in read_rows("train.csv") if row[1] not in PAIR], SHUFFLED_ITEMS)
    shuffled = [label for _, label in sample]
    rng.shuffle(shuffled)
    _, predictions = deployment.classify([t for t, _ in sample])
    for (text, _), prediction, label in zip(sample, predictions, shuffled, strict=True):
        deployment.correct(text, prediction, label)
    second = deployment.retrain(datetime(2026, 11, 30, 21, 0, tzinfo=UTC), lambda_context)
    rejected = second["promotion"]
    assert rejected["status"] == "rejected", json.dumps(rejected, indent=1)
    failed_checks = {c["name"] for c in rejected["decision"]["checks"] if not c["passed"]}
    assert failed_checks & {"holdout_macro_f1", "class_f1"}, failed_checks
    assert registry.champion_version() == candidate_version
    assert deployment.api.get("/v1/health").json()["model_version"] == candidate_version
    actions = [d.action for d in registry.decisions()]
    assert actions == [Action.PUBLISHED, Action.PROMOTED, Action.REJECTED]

    report = {
        "pair": PAIR, "new_word": NEW_WORD, "corrections_sent": corrections,
        "slice_items": len(slice_items), "slice_accuracy_before": round(before, 4),
        "slice_accuracy_after": round(after, 4),
        "first": {"training_seconds": first["training_seconds"], "decision": decision["reasons"]},
        "served_after_seconds": round(served_by, 2),
        "second": {"training_seconds": second["training_seconds"], "decision": rejected["decision"]["reasons"]},
    }
    print(json.dumps(report, indent=1))
