"""The web console in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) on the local stack.

One user journey, in order: sign in as the demo user, classify three lines, correct one, an XSS probe,
upload a CSV and download its results, a file whose name is HTML, the model page, the ops page, sign out.
Every step asserts what the page shows; screenshots go to test-artifacts/console/ (and, for the README,
docs/screenshots/).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.local.test_local_stack import LocalStack
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow
playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts" / "console"
README_SHOTS = ROOT / "docs" / "screenshots"
LINES = ["I still have not received my new card, it has been two weeks",
         "What exchange rate do you use when I pay in euros?",
         "Someone stole my wallet with my card in it"]
XSS_TEXT = ['<img src=x onerror="alert(1)">', "<script>alert(2)</script>"]
XSS_FILE_NAME = '<img src=x onerror="alert(3)">.csv'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, default_bundle: Path):
    local = LocalStack(tmp_path_factory.mktemp("console-stack"))
    local.cli("up")
    yield local
    local.cli("down", check=False)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail("/usr/bin/chromium is missing: run `make browser` (make test does it first)")
    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Journey:
    """The page plus what it did: dialogs (an XSS would open one), console errors, requests to our API."""

    def __init__(self, page, api_url: str) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.api_requests: list[tuple[str, str, str]] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.api_requests.append(
            (request.method, request.url, request.post_data or "")) if request.url.startswith(api_url) else None)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def shot(self, name: str, *, readme: bool = False) -> None:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        if readme:
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SHOTS / f"console-{name}.png")


def test_console_journey(stack: LocalStack, browser, tmp_path: Path):
    outputs = stack.outputs()
    api_url = outputs["ApiUrl"]
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    journey = Journey(page, api_url)
    expect = playwright_sync.expect

    # --- the page and sign-in ---------------------------------------------------------------------------
    response = page.goto(f"{api_url}/console/")
    assert response is not None and response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#sign-in-title")).to_have_text("Sign in")
    expect(page.locator("#tabs")).to_be_hidden()

    page.fill("#username", outputs["DemoUsername"])
    journey.shot("sign-in", readme=True)
    page.fill("#password", "not-the-password-1A!")
    page.click("#sign-in-button")
    expect(page.locator("#sign-in-error")).to_have_text("Wrong user name or password.")
    journey.shot("sign-in-error")

    page.fill("#password", outputs["DemoPassword"])
    page.keyboard.press("Enter")  # keyboard: submitting from the password field signs in
    expect(page.locator("#who-name")).to_have_text(f"Signed in as {outputs['DemoUsername']}")
    expect(page.locator("#classify-view")).to_be_visible()
    expect(page.locator("#texts")).to_be_focused()
    assert page.locator("#password").input_value() == ""
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""

    # --- classify three lines, correct one ----------------------------------------------------------------
    page.fill("#texts", "\n".join(LINES))
    page.click("#classify-button")
    expect(page.locator("#classify-state")).to_contain_text("3 classified by model")
    items = page.locator(".prediction")
    expect(items).to_have_count(3)
    model = json.loads(page.evaluate("() => fetch('../v1/health').then(r => r.text())"))
    labels = set(json.loads((ROOT / "artifacts" / "model" / "labels.json").read_text()))
    for index, line in enumerate(LINES):
        item = items.nth(index)
        expect(item.locator(".text")).to_have_text(line)
        assert item.locator(".predicted-label").inner_text() in labels
        expect(item.locator(".topk li")).to_have_count(3)
        width = item.locator(".verdict .fill").evaluate("node => parseFloat(node.style.width)")
        assert 0 < width <= 100
    journey.shot("classify", readme=True)

    first = items.nth(0)
    predicted = first.locator(".predicted-label").inner_text()
    first.get_by_role("button", name="Correct this").click()
    picker = first.get_by_role("combobox", name="Correct label")
    expect(picker).to_be_focused()
    picker.select_option("card_delivery_estimate")
    first.get_by_role("button", name="Send correction").click()
    expect(first.locator(".feedback-state")).to_contain_text("Thanks: recorded as card_delivery_estimate")
    feedback = [body for method, url, body in journey.api_requests if url.endswith("/v1/feedback")]
    assert len(feedback) == 1
    assert json.loads(feedback[0])["predicted_label"] == predicted
    assert json.loads(feedback[0])["correct_label"] == "card_delivery_estimate"
    journey.shot("correct")

    # --- XSS probe: a text that is HTML --------------------------------------------------------------------
    page.fill("#texts", "\n".join(XSS_TEXT))
    page.click("#classify-button")
    expect(page.locator("#classify-state")).to_contain_text("2 classified")
    expect(page.locator(".prediction .text")).to_have_text(XSS_TEXT)
    assert page.locator("main img[src=x], main script").count() == 0

    # --- review: the doubtful texts above wait for a person; keys decide ------------------------------------
    page.get_by_role("tab", name="Review").click()
    item = page.locator("#review-item")
    expect(item).to_be_visible()
    expect(page.locator("#review-done")).to_have_text("0 reviewed since you signed in")
    first_text = page.locator("#review-text").inner_text()
    assert first_text and page.locator("#review-choices .choice").count() >= 1
    assert page.locator("main img[src=x], main script").count() == 0  # reviewed texts that are HTML stay text
    journey.shot("review", readme=True)
    page.keyboard.press("1")  # the first label of the top-k
    expect(page.locator("#review-done")).to_have_text("1 reviewed since you signed in")
    decisions = [(url, body) for method, url, body in journey.api_requests
                 if method == "POST" and re.search(r"/v1/review/[0-9a-f]{32}$", url)]
    assert len(decisions) == 1 and json.loads(decisions[0][1])["decision"] in {"accept", "correct"}
    proposed = item.is_visible()
    if proposed:  # another item: an admin proposes a new category from it with `n`
        page.keyboard.press("n")
        expect(page.locator("#review-propose-name")).to_be_focused()
        page.fill("#review-propose-name", "pet insurance")
        page.fill("#review-propose-description", "Insurance for pets")
        page.keyboard.press("Enter")
        expect(page.locator("#review-state")).to_contain_text("Proposed “pet insurance”")
        expect(page.locator("#review-done")).to_have_text("2 reviewed since you signed in")
        proposals = [json.loads(body) for method, url, body in journey.api_requests
                     if method == "POST" and url.endswith("/propose")]
        assert proposals == [{"name": "pet insurance", "description": "Insurance for pets"}]
    assert not journey.dialogs

    # --- files: upload a CSV, watch it, download the results ----------------------------------------------
    page.get_by_role("tab", name="Files").click()
    expect(page.locator("#files-state")).to_have_text(re.compile("No files yet|^$"))
    source = tmp_path / "tickets.csv"
    source.write_text("id,text\n1,my card has not arrived yet\n2,what is the euro exchange rate\n3,\n",
                      encoding="utf-8")
    page.set_input_files("#file", str(source))
    page.click("#upload-button")
    expect(page.locator("#upload-state")).to_have_text("tickets.csv: succeeded.", timeout=180_000)
    detail = page.locator("#file-detail")
    expect(detail.locator(".file-name")).to_have_text("tickets.csv")
    facts = dict(zip(detail.locator("dt").all_inner_texts(), detail.locator("dd").all_inner_texts(), strict=True))
    assert (facts["Rows in"], facts["Classified"], facts["Rejected"]) == ("3", "2", "1")
    expect(detail.locator(".bars li")).to_have_count(2)
    expect(detail.locator("a.errors")).to_have_text("Download error report")
    expect(detail).not_to_contain_text("null")
    assert set(detail.locator(".bars .label").all_inner_texts()) <= labels
    assert sum(int(n) for n in detail.locator(".bars .num").all_inner_texts()) == 2  # the chart adds up
    journey.shot("files", readme=True)
    with page.expect_download() as download_info:
        detail.locator("a.results").click()
    download = download_info.value
    assert download.suggested_filename == "tickets.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
    assert [row["id"] for row in rows] == ["1", "2"]
    assert all(row["predicted_label"] in labels for row in rows)
    expect(page.locator("#files-table tbody tr")).to_have_count(1)
    expect(page.locator("#files-table .file-name")).to_have_text("tickets.csv")

    # --- XSS probe: a file name that is HTML ---------------------------------------------------------------
    page.set_input_files("#file", files=[{"name": XSS_FILE_NAME, "mimeType": "text/csv",
                                          "buffer": b"text\nmy card is lost\n"}])
    page.click("#upload-button")
    expect(page.locator("#upload-state")).to_have_text(f"{XSS_FILE_NAME}: succeeded.", timeout=180_000)
    expect(page.locator("#file-detail .file-name")).to_have_text(XSS_FILE_NAME)
    expect(page.locator("#files-table .file-name").first).to_have_text(XSS_FILE_NAME)
    assert page.locator("main img[src=x]").count() == 0

    # --- model --------------------------------------------------------------------------------------------
    page.get_by_role("tab", name="Model").click()
    metrics = page.locator("#model-metrics")
    expect(metrics).to_contain_text(model["model_version"])
    expect(page.locator("#f1-chart li")).to_have_count(len(labels))
    for image in ("#confusion-img", "#reliability-img"):
        page.wait_for_function(f"() => document.querySelector('{image}').naturalWidth > 0")
    # A fresh local stack publishes its champion through the registry: the history opens with that decision.
    expect(page.locator("#history-state")).to_have_text(
        re.compile(rf"Champion now: {re.escape(model['model_version'])}; \d+ registered models?\."))
    history = page.locator("#history-table tbody tr")
    expect(history.first).to_contain_text("published")
    expect(history.first).to_contain_text(model["model_version"])
    journey.shot("model", readme=True)

    # --- ops ----------------------------------------------------------------------------------------------
    page.get_by_role("tab", name="Ops").click()
    expect(page.locator("#ops-body")).to_contain_text("Feedback disagreement")
    expect(page.locator("#ops-body")).to_contain_text("alarm states")
    expect(page.locator("#ops-body")).to_contain_text(f"{predicted} → card_delivery_estimate: 1")
    ops_cards = dict(zip(page.locator("#ops-body .metric .k").all_inner_texts(),
                         page.locator("#ops-body .metric .v").all_inner_texts(), strict=True))
    # The correction above, the review decision (key 1: the predicted label, an agreement) and, if there was a
    # second item, its new category (a disagreement).
    assert (ops_cards["Failed files"], ops_cards["Feedback items"], ops_cards["Feedback disagreement"]) == (
        ("0", "3", "66.7%") if proposed else ("0", "2", "50.0%"))
    journey.shot("ops", readme=True)

    # --- keyboard: arrows move between tabs ---------------------------------------------------------------
    page.get_by_role("tab", name="Ops").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#model-view")).to_be_visible()

    # --- sign out -----------------------------------------------------------------------------------------
    page.click("#sign-out")
    expect(page.locator("#sign-in-view")).to_be_visible()
    expect(page.locator("#banner")).to_have_text("Signed out.")
    expect(page.locator(".prediction")).to_have_count(0)
    status = page.evaluate("() => fetch('../v1/model').then(r => r.status)")
    assert status == 401  # nothing kept: a fresh call has no token

    # The password went to Cognito only, never to our API; nothing ran that the page did not mean to.
    password = outputs["DemoPassword"]
    assert not [url for _, url, body in journey.api_requests if password in body or password in url]
    assert journey.dialogs == []
    assert not [e for e in journey.errors if "Content Security Policy" in e], journey.errors
    context.close()



def test_model_page_labels_tab_lists_and_records_changes_safely(stack: LocalStack, browser):
    """The labels tab: the catalogue as a table, a proposal and a rename (a name with `/` and spaces, encoded
    into the path) recorded through the form, HTML in a name or description shown as text."""
    outputs = stack.outputs()
    api_url = outputs["ApiUrl"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    journey = Journey(page, api_url)
    expect = playwright_sync.expect
    page.goto(f"{api_url}/console/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#username", outputs["DemoUsername"])
    page.fill("#password", outputs["DemoPassword"])
    page.keyboard.press("Enter")
    expect(page.locator("#classify-view")).to_be_visible()

    page.get_by_role("tab", name="Model").click()
    page.get_by_role("tab", name="Labels").click()
    expect(page.locator("#model-labels")).to_be_visible()
    expect(page.locator("#model-report")).to_be_hidden()
    labels = json.loads((ROOT / "artifacts" / "model" / "labels.json").read_text())
    # The journey's Review step may have proposed one category from a review item (`n`).
    expect(page.locator("#labels-state")).to_contain_text(re.compile(
        rf"{len(labels)} active, [01] proposed, 0 retired"))
    proposed = int(re.search(r"(\d+) proposed", page.locator("#labels-state").inner_text()).group(1))
    expect(page.locator("#labels-table tbody tr")).to_have_count(len(labels) + proposed)

    page.select_option("#label-action", "add")
    page.fill("#label-name", "home loans / mortgages")
    page.fill("#label-description", '<img src=x onerror="alert(4)">')
    page.fill("#label-examples", "\n".join(f"Can I overpay my mortgage this year, take {i}?" for i in range(10)))
    page.click("#label-form button[type=submit]")
    expect(page.locator("#label-form-state")).to_contain_text("Recorded: propose 'home loans / mortgages'")
    row = page.locator('#labels-table tbody tr[data-label="home loans / mortgages"]')
    expect(row).to_contain_text("proposed")
    expect(row).to_contain_text('<img src=x onerror="alert(4)">')  # as text, never as markup
    assert page.locator("#labels-table img").count() == 0

    page.select_option("#label-action", "rename")
    expect(page.locator("#label-examples-row")).to_be_hidden()
    page.fill("#label-name", "home loans / mortgages")
    page.fill("#label-target", "mortgage")
    page.click("#label-form button[type=submit]")
    expect(page.locator("#label-form-state")).to_contain_text(
        "rename 'home loans / mortgages' to 'mortgage'")
    expect(row).to_contain_text("rename 'home loans / mortgages' to 'mortgage'")

    page.select_option("#label-action", "add")
    page.fill("#label-name", "MORTGAGE")
    page.click("#label-form button[type=submit]")
    expect(page.locator("#label-form-state")).to_contain_text("already exists")
    journey.shot("labels")
    assert journey.dialogs == []
    assert not [e for e in journey.errors if "Content Security Policy" in e], journey.errors
    context.close()
