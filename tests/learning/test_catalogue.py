"""The label catalogue through the loop: recorded changes, the map the export and the gate apply, new-label
checks, promotion making a job's snapshot live (and only it), and a champion the catalogue does not describe."""

from __future__ import annotations

import pytest

from categorizer.registry import catalogue as cat
from categorizer.registry.evaluation import Scores, score_names
from categorizer.registry.feedback_export import held_out_for_evaluation, plan_export
from categorizer.registry.gate import GatePolicy, LabelChanges, ModelScores, decide
from tests.learning.support import feedback_record

CHAMPION_LABELS = ("card_arrival", "exchange_rate", "lost_card", "stolen_card", "top_up")
EXAMPLES = tuple(f"Can I overpay my mortgage this month without a fee, case {i}?" for i in range(40))
POLICY = GatePolicy(max_class_f1_drop=0.05, macro_f1_tolerance=0.002)


def _catalogue() -> cat.Catalogue:
    return cat.seed(CHAMPION_LABELS, champion="v1", actor="test")


def test_changes_are_recorded_with_who_and_why_and_mapped_not_applied() -> None:
    c = cat.propose(_catalogue(), name="mortgage", description="home loans", examples=EXAMPLES, actor="ann",
                    reason="new product")
    c = cat.merge(c, "stolen_card", into="lost_card", actor="ann", reason="one team handles both")
    c = cat.rename(c, "top_up", to="top up / reload", actor="bob")
    c = cat.retire(c, "exchange_rate", replaced_by=None, actor="bob", reason="we stopped FX")

    assert [(h.action.value, h.label, h.actor) for h in c.history] == [
        ("seed", None, "test"), ("add", "mortgage", "ann"), ("merge", "stolen_card", "ann"),
        ("rename", "top_up", "bob"), ("retire", "exchange_rate", "bob")]
    assert c.history[2].reason == "one team handles both" and c.revision == 5
    # Nothing is live yet: the champion's labels stay active until a promotion.
    assert {e.name: e.status.value for e in c.labels}["stolen_card"] == "active"
    label_map = c.label_map()
    assert label_map("stolen_card") == "lost_card" and label_map("top_up") == "top up / reload"
    assert label_map("exchange_rate") is None and label_map("card_arrival") == "card_arrival"
    assert c.target_labels() == ("card_arrival", "lost_card", "mortgage", "top up / reload")


def test_names_are_unique_regardless_of_case_including_retired_and_pending_ones() -> None:
    c = cat.rename(_catalogue(), "top_up", to="reload", actor="a")
    with pytest.raises(cat.LabelExistsError):
        cat.propose(c, name="RELOAD", description="", examples=EXAMPLES, actor="a")
    live, _ = cat.make_live(c, c, version="v2", model_labels=("card_arrival", "reload"), actor="p")
    with pytest.raises(cat.LabelExistsError):  # top_up is retired now, its name stays taken
        cat.propose(live, name="Top_Up", description="", examples=EXAMPLES, actor="a")
    with pytest.raises(cat.InvalidLabelNameError):
        cat.propose(live, name="semi;colon", description="", examples=EXAMPLES, actor="a")


def test_feedback_rule_accepts_proposed_and_renamed_labels_and_refuses_retired_ones() -> None:
    c = cat.propose(_catalogue(), name="mortgage", description="", examples=EXAMPLES, actor="a")
    c = cat.rename(c, "top_up", to="reload", actor="a")
    c = cat.retire(c, "exchange_rate", replaced_by="card_arrival", actor="a")
    for label in ("mortgage", "top_up", "reload"):
        cat.check_feedback_labels(c, predicted_label="card_arrival", correct_label=label,
                                  serving_labels=CHAMPION_LABELS)
    with pytest.raises(cat.RetiredLabelError) as refused:
        cat.check_feedback_labels(c, predicted_label="card_arrival", correct_label="exchange_rate",
                                  serving_labels=CHAMPION_LABELS)
    assert refused.value.details == {"label": "exchange_rate", "replaced_by": "card_arrival"}
    live, _ = cat.make_live(c, c, version="v2", model_labels=("card_arrival", "mortgage", "reload"), actor="p")
    # After the promotion: a renamed label is still accepted (its items land under the new name).
    cat.check_feedback_labels(live, predicted_label="top_up", correct_label="top_up", serving_labels=("reload",))
    with pytest.raises(cat.UnknownLabelError):
        cat.check_feedback_labels(live, predicted_label="card_arrival", correct_label="nope",
                                  serving_labels=("reload",))


def test_the_export_maps_history_drops_retired_and_splits_examples_by_the_feedback_hash() -> None:
    c = cat.propose(_catalogue(), name="mortgage", description="", examples=EXAMPLES, actor="a")
    c = cat.merge(c, "stolen_card", into="lost_card", actor="a")
    c = cat.retire(c, "exchange_rate", replaced_by=None, actor="a")
    records = [feedback_record(f"p{i}", f"text {i}", label, created_at=f"2026-01-01T00:00:{i:02d}Z")
               for i, label in enumerate(["stolen_card", "stolen_card", "exchange_rate", "mortgage", "nope"])]

    plan = plan_export(records, labels=CHAMPION_LABELS, since=None, min_new=1, holdout_percent=20, catalogue=c)

    summary = plan.summary()
    assert summary["mapped_labels"] == {"stolen_card -> lost_card": 2}
    assert summary["dropped_retired_label"] == {"exchange_rate": 1}
    assert summary["refused_unknown_label"] == {"nope": 1}
    assert summary["label_examples"] == {"mortgage": 40}
    assert summary["latest_per_prediction"] == 5  # feedback items only, examples counted apart
    examples = [e for e in plan.usable.examples if e.prediction_id.startswith("label-example:")]
    held = [e for e in examples if held_out_for_evaluation(e.prediction_id, 20)]
    assert {e.text for e in plan.evaluation} >= {e.text for e in held}
    assert not {e.text for e in plan.train} & {e.text for e in held}
    assert 0 < len(held) < 40
    assert set(summary["label_changes"]) == {"add 'mortgage'", "merge 'stolen_card' into 'lost_card'",
                                             "retire 'exchange_rate' without replacement"}


def test_a_label_change_made_while_a_job_runs_waits_for_the_next_job() -> None:
    snapshot = cat.propose(_catalogue(), name="mortgage", description="", examples=EXAMPLES, actor="a")
    later = cat.rename(snapshot, "top_up", to="reload", actor="b")  # recorded after the export
    later = cat.propose(later, name="pets", description="", examples=EXAMPLES, actor="b")

    live, made = cat.make_live(later, snapshot, version="v2", model_labels=(*CHAMPION_LABELS, "mortgage"),
                               actor="promote")

    assert made == ("add 'mortgage'",)
    by_name = {e.name: e for e in live.labels}
    assert by_name["mortgage"].status is cat.LabelStatus.ACTIVE
    assert by_name["pets"].status is cat.LabelStatus.PROPOSED
    assert by_name["top_up"].pending is not None and by_name["top_up"].status is cat.LabelStatus.ACTIVE
    assert live.champion == "v2" and live.history[-1].action is cat.ChangeAction.MADE_LIVE


def test_a_rolled_back_champion_is_explained_not_crashed_on() -> None:
    c = cat.propose(_catalogue(), name="mortgage", description="", examples=EXAMPLES, actor="a")
    c = cat.rename(c, "top_up", to="reload", actor="a")
    live, _ = cat.make_live(c, c, version="v2", model_labels=("card_arrival", "exchange_rate", "lost_card",
                                                              "stolen_card", "mortgage", "reload"), actor="p")
    notes = cat.mismatch_notes(live, champion="v1", champion_labels=CHAMPION_LABELS)  # rolled back to v1

    assert any("last made live by v2 but v1 serves" in n for n in notes)
    assert any("cannot predict active label(s) ['mortgage', 'reload']" in n for n in notes)
    assert any("still predicts retired label(s) ['top_up']" in n and "'reload'" in n for n in notes)
    # Feedback still works against the rolled-back champion, with either name.
    cat.check_feedback_labels(live, predicted_label="top_up", correct_label="reload", serving_labels=CHAMPION_LABELS)
    assert cat.mismatch_notes(live, champion="v2", champion_labels=live.target_labels()) == []


def _scores(labels: tuple[str, ...], feedback_acc: float, combined: Scores | None = None) -> ModelScores:
    per_class = dict.fromkeys(("a", "b"), 0.9)
    return ModelScores(labels=labels, holdout=Scores(n=300, accuracy=0.9, macro_f1=0.9, per_class_f1=per_class),
                       feedback=Scores(n=40, accuracy=feedback_acc, macro_f1=feedback_acc), combined=combined)


def _combined(new_label: str, held: int, hits: int, false_alarms: int) -> Scores:
    truth = [new_label] * held + ["a"] * 50
    predicted = [new_label] * hits + ["a"] * (held - hits) + [new_label] * false_alarms + ["a"] * (50 - false_alarms)
    return score_names(predicted, truth)


@pytest.mark.parametrize(("held", "hits", "false_alarms", "accepted", "words"), [
    (8, 7, 0, True, "precision 1.000"),
    (4, 4, 0, False, "has 4 held-out item(s), 5 needed"),  # too few: rejected, the label stays proposed
    (8, 4, 0, False, "recall 0.500"),
    (8, 8, 4, False, "precision 0.667"),
])
def test_a_new_label_is_judged_on_its_held_out_items(held, hits, false_alarms, accepted, words) -> None:
    champion = _scores(("a", "b"), 0.5)
    candidate = _scores(("a", "b", "mortgage"), 0.5, _combined("mortgage", held, hits, false_alarms))

    result = decide(candidate, champion, POLICY, LabelChanges(changes=("add 'mortgage'",)))

    assert result.accepted is accepted, result.reasons
    [check] = [c for c in result.checks if c.name == "new_label:mortgage"]
    assert words in check.detail
    # Label changes need no feedback improvement, only none lost.
    assert next(c for c in result.checks if c.name == "feedback_accuracy").passed


def test_a_candidate_still_holding_a_retired_label_is_rejected() -> None:
    champion = _scores(("a", "b"), 0.5)
    candidate = _scores(("a", "b", "old_b"), 0.9)
    result = decide(candidate, champion, POLICY, LabelChanges(retired=frozenset({"old_b"})))
    assert not result.accepted
    assert result.reasons == ("the candidate still holds retired label(s) ['old_b']",)


def test_label_changes_start_a_job_without_new_feedback_once_per_catalogue_revision() -> None:
    c = cat.propose(_catalogue(), name="mortgage", description="", examples=EXAMPLES, actor="a")
    since = "2999-01-01T00:00:00Z"  # every item is older: no new feedback
    first = plan_export([], labels=CHAMPION_LABELS, since=since, min_new=50, holdout_percent=20, catalogue=c)
    assert first.skip_reason is None  # the recorded change is reason enough
    # A candidate trained for this revision was registered (and rejected): the next tick waits for new items.
    again = plan_export([], labels=CHAMPION_LABELS, since=since, min_new=50, holdout_percent=20, catalogue=c,
                        trained_revision=c.revision)
    assert again.skip_reason is not None and "50 needed" in again.skip_reason
