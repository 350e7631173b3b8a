"""Issue 14's review queue, end to end on the local stack: what the model doubts reaches people, and their
decisions train the next model.

`categorizer up` starts the stack (the demo user is in the `reviewers` group). Then:

1. Texts unlike BANKING77 go through the API, and a CSV with such rows is dropped into the ingest bucket: the
   ones the model doubts are in `GET /v1/review` (`categorizer review list`), from the API (with the caller)
   and from the file (with bucket, key and row).
2. A second reviewer, a new Cognito user in the `reviewers` group with a real token, claims one item; the demo
   user cannot claim it (409 `held`), and `categorizer review` passes over it.
3. The demo user decides items in the terminal (`categorizer review`, keys typed on stdin) and through the API;
   the second reviewer decides the held one. Every accept and correct is a feedback row with `source: review`
   and the reviewer's `sub`.
4. `categorizer retrain` exports them (`train_by_source` / `evaluation_by_source` count them) and trains.

The console's Review page is driven on its own local stack by tests/console/test_console_browser.py.
Slow: a stack, a dropped file and one training on 10k texts.
"""

from __future__ import annotations

import csv
import json
import subprocess

import boto3
import httpx
import jwt
import pytest

from tests.local.test_label_scenario import retrain
from tests.local.test_local_stack import CLI, LocalStack
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

UNLIKE_BANKING = ["What will the weather be like in Paris tomorrow?", "Recommend a good pasta recipe for dinner",
                  "Who won the football match last night?", "How tall is Mount Everest?",
                  "Play some jazz music in the kitchen", "Book me a table for two at eight",
                  "what is the capital of australia", "set an alarm for 6am"]
FILE_ROWS = ["I still have not received my new card", "Remind me to water the plants on Sunday",
             "What exchange rate do you use for euros?", "How many calories are in an avocado?",
             "Translate good morning into Italian", "my card payment was declined at the shop",
             "Tell me a joke about penguins", "Can you turn the living room lights off"]
SECOND_REVIEWER, PASSWORD = "second-reviewer", "Second-Reviewer-Pw-1!"


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: dict | None = None, **query: str) -> tuple[int, dict]:
        answer = httpx.request(method, f"{self.url}{path}", json=body, params=query or None, timeout=120,
                               headers={"Authorization": f"Bearer {self.token}"})
        return answer.status_code, answer.json()

    @property
    def sub(self) -> str:
        return jwt.decode(self.token, options={"verify_signature": False})["sub"]


def _aws(outputs: dict, service: str):
    return boto3.client(service, endpoint_url=outputs["AwsEndpointUrl"], region_name=outputs["Region"],
                        aws_access_key_id="local", aws_secret_access_key="local")


def second_reviewer(outputs: dict) -> str:
    """A real Cognito user in the `reviewers` group only, signed in through the people app client."""
    idp = _aws(outputs, "cognito-idp")
    pool = outputs["UserPoolId"]
    idp.admin_create_user(UserPoolId=pool, Username=SECOND_REVIEWER, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username=SECOND_REVIEWER, Password=PASSWORD, Permanent=True)
    idp.admin_add_user_to_group(UserPoolId=pool, Username=SECOND_REVIEWER, GroupName="reviewers")
    answer = idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=outputs["UserClientId"],
                               AuthParameters={"USERNAME": SECOND_REVIEWER, "PASSWORD": PASSWORD})
    return answer["AuthenticationResult"]["AccessToken"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, default_bundle):
    local = LocalStack(tmp_path_factory.mktemp("review-scenario"))
    local.cli("up")
    yield local
    local.cli("down", check=False)


@pytest.mark.timeout(2400)
def test_doubtful_texts_reach_reviewers_and_their_decisions_train_the_next_model(stack: LocalStack, tmp_path):
    outputs = stack.outputs()
    me = Api(outputs["ApiUrl"], stack.cli("token").stdout.strip())
    other = Api(outputs["ApiUrl"], second_reviewer(outputs))

    # 1. Doubtful texts from the API and from a dropped file are in the queue.
    status, answer = me.call("POST", "/v1/classify", {"texts": UNLIKE_BANKING})
    assert status == 200, answer
    doubted = {t for t, p in zip(UNLIKE_BANKING, answer["predictions"], strict=True) if p["needs_review"]}
    assert len(doubted) >= 4, answer["predictions"]
    dropped = tmp_path / "odd-requests.csv"
    with dropped.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *([row] for row in FILE_ROWS)])
    assert "status      succeeded" in stack.cli("drop", str(dropped), timeout=300).stdout

    listing = json.loads(stack.cli("review", "list", "--json", "--limit", "100").stdout)["items"]
    by_text = {item["text"]: item for item in listing}
    assert doubted <= set(by_text)
    assert {by_text[t]["source"]["caller"] for t in doubted} == {me.sub}
    from_file = [item for item in listing if item["source"]["kind"] == "file"]
    assert len(from_file) >= 2, listing
    for item in from_file:
        assert item["source"]["key"].endswith("odd-requests.csv")
        assert FILE_ROWS[item["source"]["row"] - 1] == item["text"]  # row 1 = the first data row

    # 2. The second reviewer holds the most uncertain item; nobody else can take it.
    first = json.loads(stack.cli("review", "list", "--json", "--limit", "1").stdout)["items"][0]
    status, claimed = other.call("POST", f"/v1/review/{first['item_id']}/claim", {})
    assert status == 200 and claimed["lease_until"] > 0, claimed
    status, refused = me.call("POST", f"/v1/review/{first['item_id']}/claim", {})
    assert status == 409 and refused["error"]["details"] == {"reason": "held"}, refused

    # 3. The demo user works the queue in the terminal: accept one, pick choice 2 for the next.
    typed = subprocess.run([*CLI, "review", "--max", "2"], input="\n2\n", capture_output=True, text=True,
                           env=stack.env, cwd=ROOT, timeout=300, check=False)
    assert typed.returncode == 0, typed.stderr[-2000:]
    assert "decided as many as asked: 1 accepted, 1 corrected, 0 skipped, 1 held by another reviewer" in typed.stdout
    assert first["text"] not in typed.stdout

    # ... and through the API: claim and correct one more item.
    remaining = [i for i in me.call("GET", "/v1/review", limit="100")[1]["items"] if i["item_id"] != first["item_id"]]
    target = remaining[0]
    correct = next(s["label"] for s in target["top_k"] if s["label"] != target["label"])
    assert me.call("POST", f"/v1/review/{target['item_id']}/claim", {})[0] == 200
    status, receipt = me.call("POST", f"/v1/review/{target['item_id']}", {"decision": "correct", "label": correct})
    assert status == 200 and receipt["feedback_id"], receipt
    assert me.call("POST", f"/v1/review/{target['item_id']}", {"decision": "correct", "label": correct}) == (
        200, receipt)  # a replay is the same answer, not a second row
    status, receipt = other.call("POST", f"/v1/review/{first['item_id']}", {"decision": "accept"})
    assert status == 200 and receipt["label"] == first["label"], receipt

    rows = _aws(outputs, "dynamodb").scan(TableName=outputs["FeedbackTable"])["Items"]
    reviewed = [row for row in rows if row.get("source", {}).get("S") == "review"]
    assert len(reviewed) == 4  # 2 in the terminal, 1 through the API, 1 by the second reviewer
    assert {row["user_sub"]["S"] for row in reviewed} == {me.sub, other.sub}
    open_now = {i["item_id"] for i in me.call("GET", "/v1/review", limit="100")[1]["items"]}
    assert first["item_id"] not in open_now and target["item_id"] not in open_now

    # 4. The next training exports them (held out or trained on, by the hash rule) and trains.
    job = retrain(stack)
    export = job["export"]
    reviewed_exported = export["train_by_source"].get("review", 0) + export["evaluation_by_source"].get("review", 0)
    assert reviewed_exported == 4, export
    assert export["train_by_source"].get("review", 0) >= 1, export
    assert job["decision"]["action"] in ("promoted", "rejected"), job  # the gate decided and recorded why
