"""`categorizer review`'s one-by-one loop against the real API handler, real tokens and a real moto queue.

The loop (cli/categorizer_cli/review_commands.py) only speaks HTTP-shaped calls; here they are REST events into
the Lambda handler, so what the CLI does is what the API allows: `rita` and `rob` are reviewers, `alice` is not.
The local-stack scenario (tests/local/test_review_scenario.py) runs the same commands as a subprocess.
"""

from __future__ import annotations

import urllib.parse

import boto3
import pytest

from categorizer_cli.review_commands import Outcome, ReviewApi, ReviewApiError, Stop, highlighted, parse_answer, work
from tests.api.conftest import REGION, Api, Cognito
from tests.api.test_review import DOUBTFUL, JSON, _claim, _classify, _list

pytestmark = pytest.mark.usefixtures("api_env")
# Short texts the tiny test model doubts (it knows three banking labels).
VAGUE = [*DOUBTFUL, "what", "hm ok", "the blue one", "yes please", "stuff", "is it", "why not", "later maybe"]


def transport(api: Api, token: str):
    def call(method: str, path: str, body=None):
        path, _, query = path.partition("?")
        response = api.call("review", token=token, method=method, path=path, query=dict(urllib.parse.parse_qsl(query)),
                            body=body, headers=JSON if body is not None else None)
        return response.status, response.json if response.body else None
    return call


def scripted(*answers: str):
    """`input` for a reviewer who types these lines, then closes the terminal."""
    pending = list(answers)

    def read(prompt: str) -> str:
        assert prompt.endswith("> ")
        if not pending:
            raise EOFError
        return pending.pop(0)
    return read


def _review_feedback(moto_endpoint: str, table: str) -> list[dict]:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    items = dynamodb.scan(TableName=table)["Items"]
    return [item for item in items if item.get("source", {}).get("S") == "review"]


def test_a_reviewer_works_the_queue_one_item_at_a_time(review_api: Api, api_env: Cognito, moto_endpoint: str,
                                                       feedback_table_name: str):
    predictions = _classify(review_api, api_env, VAGUE)
    queued = [p for p in predictions if p["needs_review"]]
    assert len(queued) >= 4, "the tiny model should doubt at least four short texts"
    before = len(_review_feedback(moto_endpoint, feedback_table_name))
    read = scripted("", "7x", "2", "s", "q")  # accept; nonsense; pick choice 2; skip; quit
    shown: list[str] = []

    tally = work(ReviewApi(transport(review_api, api_env.access_token("rita"))), read=read, write=shown.append)

    output = "\n".join(shown)
    assert tally.decided[Outcome.ACCEPTED] + tally.decided[Outcome.CORRECTED] == 2
    assert tally.decided[Outcome.SKIPPED] == 1 and tally.stopped is Stop.QUIT
    assert "not understood: '7x'" in output and "-> skip" in output
    assert "   1 " in output and "   2 " in output  # the top-k as numbered choices
    assert len(_review_feedback(moto_endpoint, feedback_table_name)) - before == 2
    still_open = {item["text"] for item in _list(review_api, api_env, limit="100")["items"]}
    assert len(still_open) == len(queued) - 2  # the skipped item and the one left at quit are open again


def test_an_item_another_reviewer_holds_is_passed_over_not_taken(review_api: Api, api_env: Cognito):
    _classify(review_api, api_env, VAGUE)
    items = _list(review_api, api_env, limit="100")["items"]
    held = items[0]["item_id"]
    assert _claim(review_api, api_env, held, user="rob").status == 200
    read = scripted(*["s"] * len(items))
    shown: list[str] = []

    tally = work(ReviewApi(transport(review_api, api_env.access_token("rita"))), read=read, write=shown.append)

    assert tally.held_by_others == 1 and tally.stopped is Stop.EMPTY
    assert tally.decided[Outcome.SKIPPED] == len(items) - 1
    assert held not in "\n".join(shown)


def test_a_label_the_model_does_not_know_is_refused_and_asked_again(review_api: Api, api_env: Cognito,
                                                                     moto_endpoint: str, feedback_table_name: str):
    _classify(review_api, api_env, DOUBTFUL)
    read = scripted("c no_such_label", "/card", "1")
    shown: list[str] = []

    tally = work(ReviewApi(transport(review_api, api_env.access_token("rita"))), read=read, write=shown.append,
                 limit=1)

    output = "\n".join(shown)
    assert "422" in output and "no_such_label" in output
    assert tally.reviewed == 1 and tally.stopped is Stop.LIMIT
    (decided,) = [line for line in shown if line.startswith("  -> ")]
    assert "card" in decided.lower()  # choice 1 of the search for "card"


def test_a_caller_without_the_review_permission_gets_the_apis_reason(review_api: Api, api_env: Cognito):
    read = scripted()
    with pytest.raises(ReviewApiError) as refused:
        work(ReviewApi(transport(review_api, api_env.access_token("alice"))), read=read, write=print)
    assert refused.value.status == 403 and "403" in str(refused.value)


@pytest.mark.parametrize(("line", "expected"), [
    ("", Outcome.ACCEPTED), ("s", Outcome.SKIPPED), ("2", Outcome.CORRECTED), ("c card_arrival", Outcome.CORRECTED)])
def test_what_a_typed_line_means(line: str, expected: Outcome):
    parsed = parse_answer(line, ["a", "b"])
    assert not isinstance(parsed, str) and parsed.outcome is expected
    assert parse_answer("3", ["a", "b"]) == "no choice 3: pick 1-2"


def test_explanation_words_are_marked_in_the_text_without_changing_it():
    spans = [{"text": "new card", "weight": 0.4}, {"text": "card", "weight": 0.2}, {"text": "<b>", "weight": 0.1}]
    text = "my new card <b> has not come"
    assert highlighted(text, spans, ansi=False) == "my [[new card]] [[<b>]] has not come"
    assert highlighted(text, spans, ansi=True).replace("\033[1;33m", "").replace("\033[0m", "") == text
