"""The registry: publish, list, the champion pointer, and the decision log (forced promotions, rollbacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from categorizer.model_store import ChampionPointer
from categorizer.registry.records import Action
from categorizer.registry.store import RegistryError
from tests.learning.support import BUCKET, PARAMETER, Stage, reversioned


@pytest.fixture
def versions(stage: Stage, champion: str, tiny_bundle: Path, tmp_path: Path) -> list[str]:
    """Three registered versions; the first is the champion."""
    registry = stage.registry()
    out = [champion]
    for name in ("20261201-000000-bbbbbbbb", "20261202-000000-cccccccc"):
        bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / name, name)
        from categorizer.engine import load_bundle

        registry.register(tarball, load_bundle(bundle_dir), source={"kind": "training_job", "job_name": name})
        out.append(name)
    return out


def test_publish_registers_the_bundle_and_points_the_champion_at_it(stage: Stage, champion: str):
    pointer = ChampionPointer.parse(stage.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])
    assert pointer.version == champion and pointer.key == f"models/{champion}/model.tar.gz"
    assert stage.s3.head_object(Bucket=BUCKET, Key=pointer.key)["ContentLength"] > 0
    manifest = json.loads(stage.s3.get_object(Bucket=BUCKET, Key=f"models/{champion}/manifest.json")["Body"].read())
    assert manifest["labels"] == ["card_arrival", "exchange_rate", "lost_or_stolen_card"]
    assert manifest["bundle_manifest"]["version"] == champion
    [decision] = stage.registry().decisions()
    assert (decision.action, decision.version, decision.previous_champion, decision.actor) == \
        (Action.PUBLISHED, champion, None, "test")


def test_publishing_again_keeps_the_champion_unless_asked(stage: Stage, champion: str, tiny_bundle: Path,
                                                          tmp_path: Path):
    registry = stage.registry()
    bundle_dir, tarball = reversioned(tiny_bundle, tmp_path / "v2", "20261201-000000-bbbbbbbb")
    assert registry.publish(bundle_dir, tarball, actor="test") is None
    assert registry.champion_version() == champion
    decision = registry.publish(bundle_dir, tarball, actor="ops", reason="hotfix", replace_champion=True)
    assert decision.action is Action.PUBLISHED and decision.previous_champion == champion
    assert registry.champion_version() == "20261201-000000-bbbbbbbb"


def test_forced_promotion_records_who_overrode_the_gate_and_why(stage: Stage, versions: list[str]):
    registry = stage.registry()
    decision = registry.force_promote(versions[2], actor="arn:aws:iam::123456789012:user/alice",
                                      reason="hotfix for a label typo")
    assert registry.champion_version() == versions[2]
    stored = registry.decisions()[-1]
    assert stored == decision
    assert stored.action is Action.FORCED and stored.previous_champion == versions[0]
    assert stored.actor == "arn:aws:iam::123456789012:user/alice"
    assert stored.reasons == ("forced by arn:aws:iam::123456789012:user/alice: hotfix for a label typo",)
    with pytest.raises(RegistryError, match="reason"):
        registry.force_promote(versions[1], actor="bob", reason="  ")
    with pytest.raises(RegistryError, match="no model"):
        registry.force_promote("20990101-000000-deadbeef", actor="bob", reason="typo")


def test_rollback_walks_back_through_the_champions(stage: Stage, versions: list[str]):
    registry = stage.registry()
    v1, v2, v3 = versions
    registry.force_promote(v2, actor="alice", reason="try v2")
    registry.force_promote(v3, actor="alice", reason="try v3")
    first = registry.rollback(actor="bob", reason="v3 misroutes refunds")
    assert (first.action, first.version, first.previous_champion) == (Action.ROLLED_BACK, v2, v3)
    assert first.reasons == (f"rolled back from {v3} to {v2} by bob: v3 misroutes refunds",)
    assert registry.champion_version() == v2
    second = registry.rollback(actor="bob")
    assert (second.version, second.previous_champion) == (v1, v2)
    assert registry.champion_version() == v1
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback(actor="bob")
    explicit = registry.rollback(actor="carol", to=v3)
    assert registry.champion_version() == v3 and explicit.previous_champion == v1
    actions = [d.action for d in registry.decisions()]
    assert actions == [Action.PUBLISHED, Action.FORCED, Action.FORCED, Action.ROLLED_BACK, Action.ROLLED_BACK,
                       Action.ROLLED_BACK]


def test_decisions_are_objects_listed_in_time_order(stage: Stage, versions: list[str]):
    registry = stage.registry()
    registry.force_promote(versions[1], actor="a", reason="r")
    registry.rollback(actor="b")
    keys = [o["Key"] for o in stage.s3.list_objects_v2(Bucket=BUCKET, Prefix="decisions/")["Contents"]]
    assert keys == sorted(keys) and len(keys) == 3
    assert [k.split("-", 2)[1] for k in keys] == ["published", "forced", "rolled_back"]
    assert [d.at for d in registry.decisions()] == sorted(d.at for d in registry.decisions())


def test_rollback_with_one_champion_only_is_refused(stage: Stage, champion: str):
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        stage.registry().rollback(actor="bob")


def test_list_models_reads_bare_bundle_manifests_too(stage: Stage, champion: str, tiny_bundle: Path):
    """A bundle uploaded with its own manifest.json beside it (no registry fields) still lists and serves."""
    stage.s3.put_object(Bucket=BUCKET, Key="models/20261130-000000-eeeeeeee/manifest.json",
                        Body=(tiny_bundle / "manifest.json").read_bytes().replace(
                            json.loads((tiny_bundle / "manifest.json").read_text())["version"].encode(),
                            b"20261130-000000-eeeeeeee"))
    records = {r.version: r for r in stage.registry().list_models()}
    assert set(records) == {champion, "20261130-000000-eeeeeeee"}
    bare = records["20261130-000000-eeeeeeee"]
    assert bare.labels is None and bare.source == {"kind": "unknown"} and bare.metrics
    registry = stage.registry()
    assert registry.labels_of(records[champion], stage.cache_dir) == \
        ("card_arrival", "exchange_rate", "lost_or_stolen_card")


def test_the_placeholder_pointer_reads_as_no_champion(stage: Stage):
    assert stage.registry().champion_version() is None
