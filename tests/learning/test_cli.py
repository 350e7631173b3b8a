"""`categorizer model list|promote|rollback` against a stage given by its outputs file (moto in server mode,
the way the local stack serves it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from categorizer.contract.names import FEEDBACK_TABLE
from categorizer.registry.records import Action
from categorizer_cli.main import main
from categorizer_cli.registry_commands import registry_for
from categorizer_cli.stack_client import Stack
from tests.learning.support import BUCKET, PARAMETER, REGION, TABLE, reversioned
from tests.support.network import free_port
from tests.support.paths import TEST_DATA

V2 = "20261201-000000-bbbbbbbb"



@pytest.fixture
def outputs(tmp_path: Path, tiny_bundle: Path, tiny_tarball: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    # moto's state is global to the process: names of its own keep this test apart from every other.
    suffix = uuid.uuid4().hex[:8]
    bucket, table = f"{BUCKET}-{suffix}", f"{TABLE}-{suffix}"
    try:
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps({"Categorizer-dev": {
            "Stage": "dev", "Region": REGION, "ModelBucket": bucket, "ChampionParameter": f"{PARAMETER}-{suffix}",
            "FeedbackTable": table, "AwsEndpointUrl": endpoint}}))
        stack = Stack.load(path)
        stack.aws("s3").create_bucket(Bucket=bucket)
        stack.aws("dynamodb").create_table(**FEEDBACK_TABLE.create_table_kwargs(table))
        stack.aws("s3").upload_file(str(TEST_DATA / "tiny.csv"), bucket, "training/holdout/tiny.csv")
        registry = registry_for(stack)
        registry.publish(tiny_bundle, tiny_tarball, actor="setup")
        bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / V2, V2)
        from categorizer.engine import load_bundle

        registry.register(tarball, load_bundle(bundle_dir), source={"kind": "training_job", "job_name": "job-2"})
        yield path
    finally:
        server.stop()


def run(*argv: str) -> int:
    return main(list(argv))


def test_model_list_shows_versions_metrics_champion_and_decisions(outputs: Path, tiny_bundle: Path, capsys):
    assert run("model", "list", "--outputs", str(outputs), "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    champion = json.loads((tiny_bundle / "manifest.json").read_text())["version"]
    assert listing["champion"] == champion
    statuses = {m["version"]: m["status"] for m in listing["models"]}
    assert statuses == {champion: "CHAMPION", V2: "registered"}
    assert all(m["bundle_manifest"]["metrics"]["accuracy"] > 0 for m in listing["models"])
    assert [d["action"] for d in listing["decisions"]] == ["published"]

    assert run("model", "list", "--outputs", str(outputs)) == 0
    text = capsys.readouterr().out
    assert f"champion: {champion}" in text and "CHAMPION" in text and "published" in text and "job-2" in text


def test_promote_runs_the_gate_and_force_records_who_overrode_it(outputs: Path, capsys):
    # The same network under another version cannot beat the champion on feedback: the gate says no.
    assert run("model", "promote", V2, "--outputs", str(outputs)) == 1
    refused = capsys.readouterr().out
    assert f"{V2} does not pass the gate" in refused and "no held-out feedback items" in refused
    registry = registry_for(Stack.load(outputs))
    champion = registry.champion_version()
    assert champion != V2

    assert run("model", "promote", V2, "--force", "--outputs", str(outputs)) == 1  # a reason is required
    assert "needs a reason" in capsys.readouterr().out
    assert run("model", "promote", V2, "--force", "--reason", "customer escalation", "--by", "alice",
               "--outputs", str(outputs)) == 0
    assert registry.champion_version() == V2
    decision = registry.decisions()[-1]
    assert (decision.action, decision.actor, decision.previous_champion) == (Action.FORCED, "alice", champion)
    assert decision.reasons == ("forced by alice: customer escalation",)


def test_rollback_puts_the_previous_champion_back_and_says_who(outputs: Path, capsys):
    registry = registry_for(Stack.load(outputs))
    first = registry.champion_version()
    assert run("model", "rollback", "--outputs", str(outputs)) == 1  # nothing before the first champion
    assert "nothing to roll back to" in capsys.readouterr().out
    assert run("model", "promote", V2, "--force", "--reason", "try it", "--outputs", str(outputs)) == 0
    assert run("model", "rollback", "--reason", "worse on refunds", "--outputs", str(outputs)) == 0
    assert registry.champion_version() == first
    decision = registry.decisions()[-1]
    assert decision.action is Action.ROLLED_BACK and decision.actor.startswith("local:")
    assert decision.reasons[0].endswith(": worse on refunds")


def test_unknown_versions_are_refused_with_the_known_ones(outputs: Path, capsys):
    assert run("model", "promote", "nope", "--force", "--reason", "x", "--outputs", str(outputs)) == 1
    assert "no model 'nope' in the registry" in capsys.readouterr().out


def test_boto3_clients_use_the_outputs_endpoint(outputs: Path):
    stack = Stack.load(outputs)
    assert stack.aws("s3").meta.endpoint_url == stack.outputs["AwsEndpointUrl"]
    assert boto3.client("s3", region_name=REGION).meta.endpoint_url != stack.outputs["AwsEndpointUrl"]


@pytest.mark.parametrize("stage_name", ["dev", "prod", "local"])
def test_the_cli_gate_and_the_promote_function_decide_a_borderline_candidate_alike(tmp_path: Path, stage_name: str,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    """`categorizer model promote` builds the promote function's settings from the same stage values, whatever
    the caller's shell holds; a candidate 0.001 below the champion's macro-F1 gets the same decision."""
    from categorizer.contract import PromoteSettings
    from categorizer.registry.evaluation import Scores
    from categorizer.registry.gate import ModelScores, decide
    from categorizer.registry.promotion import policy_from
    from categorizer_cli.registry_commands import promote_settings
    from infra import config as infra

    monkeypatch.setenv("PROMOTION_MACRO_F1_TOLERANCE", "0")  # a stray shell value must not change the CLI's gate
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({f"Categorizer-{stage_name}": {
        "Stage": stage_name, "Region": REGION, "ModelBucket": "b", "ChampionParameter": "/p", "FeedbackTable": "t"}}))
    cli = promote_settings(Stack.load(outputs))
    stage = infra.load_stage(stage_name)
    names = infra.resource_names(stage_name, account="123456789012", region=REGION)
    deployed = PromoteSettings.from_env(infra.function_environment(infra.FunctionName.PROMOTE, stage=stage,
                                                                   names=names))
    assert cli.learning == deployed.learning

    def model(macro: float) -> ModelScores:
        return ModelScores(labels=("a", "b"), holdout=Scores(n=3080, accuracy=macro, macro_f1=macro,
                                                              per_class_f1={"a": macro, "b": macro}),
                           feedback=Scores(n=40, accuracy=0.9, macro_f1=0.9))

    champion, candidate = model(0.940), model(0.939)
    champion = ModelScores(labels=champion.labels, holdout=champion.holdout,
                           feedback=Scores(n=40, accuracy=0.5, macro_f1=0.5))
    by_cli = decide(candidate, champion, policy_from(cli.learning))
    by_function = decide(candidate, champion, policy_from(deployed.learning))
    assert by_cli.accepted == by_function.accepted is True  # within the stage's 0.002 re-quantization tolerance
    assert by_cli.reasons == by_function.reasons


def test_labels_commands_record_changes_and_model_list_shows_them(outputs: Path, tmp_path: Path, capsys):
    examples = tmp_path / "mortgage.txt"
    examples.write_text("\n".join(f"How much can I borrow for a house, take {i}?" for i in range(12)) + "\n")
    assert run("labels", "add", "mortgage", "--examples", str(examples), "--description", "home loans",
               "--reason", "new product", "--by", "ann", "--outputs", str(outputs)) == 0
    assert "recorded (revision 2): add 'mortgage' by ann" in capsys.readouterr().out
    assert run("labels", "merge", "lost_or_stolen_card", "card_arrival", "--by", "ann",
               "--outputs", str(outputs)) == 0
    assert run("labels", "rename", "exchange_rate", "rates / fx", "--outputs", str(outputs)) == 0
    capsys.readouterr()

    assert run("labels", "list", "--json", "--outputs", str(outputs)) == 0
    view = json.loads(capsys.readouterr().out)
    by_name = {label["name"]: label for label in view["labels"]}
    assert by_name["mortgage"]["status"] == "proposed" and by_name["mortgage"]["examples"] == 12
    assert by_name["lost_or_stolen_card"]["pending"] == "merge 'lost_or_stolen_card' into 'card_arrival'"
    assert [h["action"] for h in view["history"]] == ["seed", "add", "merge", "rename"]
    assert view["history"][1]["reason"] == "new product"

    assert run("model", "list", "--outputs", str(outputs)) == 0
    text = capsys.readouterr().out
    assert "labels (catalogue revision 4): 3 active, 1 proposed" in text
    assert "rename 'exchange_rate' to 'rates / fx'" in text

    # Errors are one line (and a hint), never a traceback.
    assert run("labels", "add", "MORTGAGE", "--examples", str(examples), "--outputs", str(outputs)) == 2
    err = capsys.readouterr().err
    assert err.startswith("categorizer: a label named 'mortgage' (proposed) already exists")
    assert "Traceback" not in err
    few = tmp_path / "few.txt"
    few.write_text("one\ntwo\n")
    assert run("labels", "add", "pets", "--examples", str(few), "--outputs", str(outputs)) == 2
    assert "at least 10 different" in capsys.readouterr().err
