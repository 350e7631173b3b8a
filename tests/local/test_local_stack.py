"""End to end on the local stack: start on loopback, token, classify, feedback, drop a file, restart, stop.

The stack runs as `categorizer up` would run it for a user: a detached supervisor process with the
emulator, the token endpoint, the API and the event pump, on free loopback ports in a temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.network import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "categorizer_cli.main"]



def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalStack:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = {"CATEGORIZER_MOTO_PORT": free_port(), "CATEGORIZER_API_PORT": free_port(),
                      "CATEGORIZER_TOKEN_PORT": free_port()}
        self.env = {**os.environ, "CATEGORIZER_LOCAL_DIR": str(directory),
                    **{k: str(v) for k, v in self.ports.items()}}

    def cli(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=self.env, cwd=ROOT,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            log = (self.directory / "stack.log").read_text(errors="replace")[-4000:] if (
                self.directory / "stack.log").exists() else ""
            raise AssertionError(f"categorizer {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}\nstack log:\n{log}")
        return result

    @property
    def pid(self) -> int:
        return int((self.directory / "stack.pid").read_text())

    def outputs(self) -> dict:
        (stack,) = json.loads((self.directory / "outputs.json").read_text()).values()
        return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, default_bundle: Path):
    local = LocalStack(tmp_path_factory.mktemp("local-stack"))
    local.cli("up")
    yield local
    local.cli("down", check=False)


def test_up_prints_what_to_try_and_writes_cdk_shaped_outputs(stack: LocalStack):
    outputs = stack.outputs()
    for key in ("ApiUrl", "UserPoolId", "MachineClientId", "UserClientId", "TokenUrl", "IngestBucket",
                "ResultsBucket", "ModelBucket", "ChampionParameter", "FeedbackTable", "IngestQueueUrl"):
        assert outputs[key], key
    assert outputs["ApiUrl"] == f"http://127.0.0.1:{stack.ports['CATEGORIZER_API_PORT']}"
    again = stack.cli("up")  # idempotent: a second `up` reports the running stack
    assert "already running" in again.stdout
    assert "categorizer classify" in again.stdout and "categorizer drop" in again.stdout


def test_tokens_from_cognito_for_people_and_machines(stack: LocalStack):
    import jwt

    person = jwt.decode(stack.cli("token").stdout.strip(), options={"verify_signature": False})
    machine = jwt.decode(stack.cli("token", "--machine").stdout.strip(), options={"verify_signature": False})
    pool = stack.outputs()["UserPoolId"]
    assert person["iss"].endswith(pool) and machine["iss"].endswith(pool)
    assert person["token_use"] == "access" and "cognito:groups" in person
    from infra.config import USER_POOL

    assert set(machine["scope"].split()) == set(USER_POOL.machine_oauth_scopes)  # every permission's scope
    # The demo user may try everything locally, the label catalogue (admins) and the review queue included.
    assert set(person["cognito:groups"]) == {group for group, _ in USER_POOL.groups}


def test_classify_then_feedback_through_the_api(stack: LocalStack):
    answer = json.loads(stack.cli("classify", "--json", "I still have not received my new card").stdout)
    (prediction,) = answer["predictions"]
    assert prediction["label"] == "card_arrival"
    sent = stack.cli("feedback", "--prediction-id", prediction["prediction_id"], "--text",
                     "I still have not received my new card", "--predicted", prediction["label"],
                     "--correct", "card_delivery_estimate")
    assert json.loads(sent.stdout)["feedback_id"]
    # One correction the next retrain certainly trains on: the hold-out rule keeps a fixed share of prediction
    # ids (by hash) out of training, and the API's id above may be one of them.
    from categorizer.registry.feedback_export import held_out_for_evaluation
    from infra.config import load_stage

    share = load_stage("local").learning.feedback_holdout_percent
    trained = next(p for p in (f"local-test-{i}" for i in range(1000)) if not held_out_for_evaluation(p, share))
    stack.cli("feedback", "--prediction-id", trained, "--text", "my new card has still not come",
              "--predicted", "card_arrival", "--correct", "card_delivery_estimate")
    refused = stack.cli("feedback", "--prediction-id", "p-x", "--text", "t", "--predicted", "card_arrival",
                        "--correct", "no_such_label", check=False)
    assert refused.returncode == 1
    assert "card_arrival" in refused.stdout  # the valid labels are listed


def test_retrain_now_trains_on_the_feedback_and_records_a_decision(stack: LocalStack):
    result = json.loads(stack.cli("retrain", "--json", timeout=1200).stdout)
    assert result["ok"] is True
    started = result["start_training"]
    assert started["status"] == "started", started
    (job,) = result["jobs"]
    listing = stack.cli("model", "list").stdout
    assert "published" in listing  # the default model's publication opens the history
    decision = json.dumps(job)
    assert any(word in decision for word in ("promoted", "rejected")), decision
    assert started["job_name"] in listing or job.get("version", "") in listing


def test_drop_a_csv_and_get_results_errors_and_manifest(stack: LocalStack):
    dropped = stack.cli("drop", str(ROOT / "examples" / "support-messages.csv"), timeout=300)
    assert "status      succeeded" in dropped.stdout
    assert "rows        10 in, 9 classified, 1 rejected" in dropped.stdout
    status = stack.cli("status")
    assert "warnings: none" in status.stdout


def test_drop_download_fetches_the_outputs_and_files_lists_them(stack: LocalStack, tmp_path: Path):
    """The Excel export a Windows team drops: classified, and its outputs land where the user asked."""
    source = ROOT / "examples" / "support-messages-windows1252.csv"
    dropped = stack.cli("drop", str(source), "--download", str(tmp_path / "out"), timeout=300)
    assert "encoding    cp1252" in dropped.stdout, dropped.stdout
    results = tmp_path / "out" / "support-messages-windows1252.results.csv"
    manifest = json.loads((tmp_path / "out" / "support-messages-windows1252.manifest.json").read_text())
    assert str(results) in dropped.stdout and results.is_file()
    assert manifest["rows_in"] == manifest["rows_classified"] + manifest["rows_rejected"]
    assert manifest["rows_classified"] >= 1 and manifest["encoding"] == "cp1252"
    assert "€" in results.read_text(encoding="utf-8") or "é" in results.read_text(encoding="utf-8")
    listed = stack.cli("files").stdout
    assert "support-messages-windows1252.csv" in listed and "succeeded" in listed


def test_preflight_checks_the_emulated_account(stack: LocalStack):
    """Against the emulator: the stage's buckets exist (this account's), nothing is bootstrapped for the CDK, and
    what the emulator cannot answer is skipped with its reason, never a crash."""
    checked = stack.cli("preflight", "--stage", "local", check=False)
    lines = checked.stdout.splitlines()
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert any(line.startswith("FAIL  cdk bootstrap") for line in lines)
    assert sum("exists in this account" in line for line in lines) == 4
    assert any(line.startswith("PASS  training image") for line in lines)
    assert "Traceback" not in checked.stdout + checked.stderr


def test_restart_keeps_state_and_down_leaves_nothing_running(stack: LocalStack):
    import boto3

    pid = stack.pid
    stack.cli("down")
    assert not (stack.directory / "stack.pid").exists()
    time.sleep(0.5)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not any(_port_open(port) for port in stack.ports.values())

    stack.cli("up")
    outputs = stack.outputs()
    s3 = boto3.client("s3", endpoint_url=outputs["AwsEndpointUrl"], region_name="us-east-1",
                      aws_access_key_id="local", aws_secret_access_key="local")
    manifest = json.loads(s3.get_object(Bucket=outputs["ResultsBucket"],
                                        Key="results/cli/support-messages.manifest.json")["Body"].read())
    assert manifest["rows_in"] == manifest["rows_classified"] + manifest["rows_rejected"] == 10
    dynamodb = boto3.client("dynamodb", endpoint_url=outputs["AwsEndpointUrl"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")
    assert dynamodb.scan(TableName=outputs["FeedbackTable"])["Count"] >= 1
