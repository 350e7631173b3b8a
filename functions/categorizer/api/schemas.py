"""Request and response bodies of the public API (pydantic, strict, extra fields refused).

The limits are part of the API's contract (the OpenAPI document states them), so they are constants here,
not deployment settings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from categorizer.contract import names

MAX_TEXTS = 256
MAX_TEXT_CHARS = 10_000
MAX_TOP_K = 20  # a model with fewer labels returns all of its labels
MAX_EXPLAIN_TEXTS = 32  # explaining costs a batched pass per text (docs/model.md, "Explanations")
MAX_LABEL_CHARS = 200
MAX_COMMENT_CHARS = 2_000
PREDICTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# At least one character that is not whitespace, the same in Python (the engine strips with str.strip) and in
# JSON Schema's ECMA regex (what clients and schemathesis read): Python also counts \x1c-\x1f and \x85 as
# whitespace, ECMA also \ufeff, so the class excludes the union.
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]


def _integral(value: object) -> object:
    """JSON Schema's `integer` includes 17.0; strict pydantic would refuse it. 17.5 and "17" stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]


class _Request(BaseModel):
    # strict: "3" is not an int and 1 is not a string; unknown fields are an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class ClassifyRequest(_Request):
    """Send either `texts` (a list) or `text` (one string)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["texts"]}, {"required": ["text"]}],
            "examples": [{"texts": ["My card has not arrived yet"], "top_k": 3},
                         {"text": "What exchange rate do you use?"}],
        }
    )

    # Absent means None, but an explicit null is refused (strict), so the annotations carry no `| None`.
    texts: list[Text] = Field(default=None, min_length=1, max_length=MAX_TEXTS,  # type: ignore[assignment]
                              description=f"1 to {MAX_TEXTS} texts, each 1 to {MAX_TEXT_CHARS} characters "
                                          "with at least one that is not whitespace",
                              json_schema_extra=_no_default)
    text: Text = Field(default=None, description="One text; the same as `texts` with one item",  # type: ignore[assignment]
                       json_schema_extra=_no_default)
    top_k: Integer = Field(default=3, ge=1, le=MAX_TOP_K,
                       description="How many ranked labels to return (all of them if the model has fewer)")
    explain: bool = Field(default=False, description=f"Also say which words moved each decision (at most "
                                                     f"{MAX_EXPLAIN_TEXTS} texts per request)")

    @model_validator(mode="after")
    def _exactly_one_input(self) -> ClassifyRequest:
        if (self.texts is None) == (self.text is None):
            raise ValueError("send either `texts` (a list of strings) or `text` (one string)")
        if self.explain and len(self.all_texts) > MAX_EXPLAIN_TEXTS:
            raise ValueError(f"`explain` takes at most {MAX_EXPLAIN_TEXTS} texts per request")
        return self

    @property
    def all_texts(self) -> list[str]:
        return self.texts if self.texts is not None else [self.text]  # type: ignore[list-item]


class LabelScoreOut(BaseModel):
    label: str
    score: float


class ExplanationSpanOut(BaseModel):
    text: str = Field(description="a word or phrase of the text as sent (an exact substring)")
    weight: float = Field(description="how much the label's probability drops without it")


class PredictionOut(BaseModel):
    prediction_id: str = Field(description="Quote it in POST /v1/feedback to correct this prediction")
    label: str
    confidence: float
    top_k: list[LabelScoreOut]
    needs_review: bool = Field(description="confidence is below the model's review threshold, or the text is "
                                           "out of scope")
    truncated: bool = Field(description="the text was longer than the model reads; the tail was ignored")
    out_of_scope: bool = Field(description="the text is unlike anything the model was trained on (novelty above "
                                           "the model's calibrated threshold): the label is likely wrong")
    novelty: float = Field(description="how unlike the training data the text is (0 = typical; higher = less "
                                       "like it); 0 for models built without out-of-scope detection")
    explanation: list[ExplanationSpanOut] | None = Field(
        default=None, description="with `explain`: up to 5 words that moved the decision toward `label`, "
                                  "strongest first; null otherwise")
    explanation_runner_up: list[ExplanationSpanOut] | None = Field(
        default=None, description="with `explain`: the same for the second-ranked label; null otherwise")


class ClassifyResponse(BaseModel):
    model_version: str
    predictions: list[PredictionOut] = Field(description="One per input text, in input order")


class FeedbackRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{
            "prediction_id": "5f0c3b1e9a7d4c2b8e6f1a3d5c7b9e0f",
            "text": "My card has not arrived yet",
            "predicted_label": "exchange_rate",
            "correct_label": "card_arrival",
            "comment": "it is about delivery",
        }]}
    )

    prediction_id: str = Field(pattern=PREDICTION_ID_PATTERN, description="From the classify response")
    text: Text
    predicted_label: Label
    correct_label: Label
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


class FeedbackResponse(BaseModel):
    feedback_id: str


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_version: str


class ModelInfo(BaseModel):
    model_version: str
    labels: list[str]
    review_threshold: float
    out_of_scope_threshold: float | None = Field(
        description="novelty above which a prediction is out_of_scope (the stage's override, else the model's "
                    "calibrated one); null: the model has no out-of-scope detection")
    max_tokens: int
    metrics: dict[str, Any] = Field(description="Evaluation metrics recorded when the model was built")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. `validation_error`")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# --- Review queue -----------------------------------------------------------------------------------------
REVIEW_PAGE_MAX = 100
ITEM_ID_PATTERN = r"^[0-9a-f]{32}$"


class ReviewSourceOut(BaseModel):
    kind: Literal["api", "file"] = Field(description="`api`: a classify call; `file`: a row of a dropped file")
    caller: str | None = Field(default=None, description="api: the caller's token `sub`")
    bucket: str | None = None
    key: str | None = None
    row: int | None = Field(default=None, description="file: the row number (1 = first data row)")


class ReviewItemOut(BaseModel):
    item_id: str = Field(pattern=ITEM_ID_PATTERN)
    text: str
    source: ReviewSourceOut
    model_version: str
    label: str = Field(description="the label the model predicted")
    confidence: float = Field(ge=0, le=1)
    top_k: list[LabelScoreOut]
    novelty: float
    out_of_scope: bool
    seen: int = Field(ge=1, description="how often this text (normalised) was queued")
    created_at: str = Field(description="when the text was first queued (ISO-8601 UTC)")


class ReviewPage(BaseModel):
    items: list[ReviewItemOut]
    next: str | None = Field(description="pass as `cursor` for the next page; null: no more items")


class ClaimedItemOut(ReviewItemOut):
    lease_until: int = Field(description="the claim holds until this time (epoch seconds); decide before it")
    explanation: list[ExplanationSpanOut] | None = Field(
        default=None, description="words of the text that moved the model toward its label (if the engine explains)")


class ReviewDecisionRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"decision": "accept"},
                                                               {"decision": "correct", "label": "card_arrival"},
                                                               {"decision": "skip"}]})

    decision: Literal["accept", "correct", "skip"] = Field(
        description="accept: the predicted label is right; correct: `label` is; skip: back to the queue")
    label: Label = Field(default=None, description="the right label (correct; optional on accept)",  # type: ignore[assignment]
                         json_schema_extra=_no_default)


class ReviewDecisionResponse(BaseModel):
    item_id: str
    decision: Literal["accept", "correct", "skip"]
    label: str | None = Field(description="the label recorded (null for a skip)")
    feedback_id: str | None = Field(description="the feedback item the decision became (null for a skip)")
# --- Labels (the catalogue: registry/catalogue.py) ------------------------------------------------------------

LabelName = Annotated[str, Field(min_length=1, max_length=names.LABEL_NAME_MAX, pattern=names.LABEL_NAME_PATTERN,
                                 description="Letters, digits, `_ - . ? /` and inner spaces")]
ExampleText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NOT_BLANK)]


class LabelOut(BaseModel):
    name: str
    description: str
    status: Literal["active", "proposed", "retired"]
    examples: int = Field(description="Example texts stored with the label (a proposed label's training data)")
    feedback: int = Field(description="Feedback items whose correct label maps to this label")
    replaced_by: str | None = Field(description="A retired label: where its items go (null: dropped)")
    pending: str | None = Field(description="A recorded change that the next promotion makes live")


class LabelsResponse(BaseModel):
    labels: list[LabelOut]
    revision: int = Field(description="The catalogue's revision (0: not stored yet, the champion's labels)")
    champion: str | None = Field(description="The model serving now")
    notices: list[str] = Field(description="Why the catalogue and the serving champion disagree, if they do")


class ProposeLabelRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "mortgage", "description": "Home loans: applications, rates, repayments",
        "examples": [f"question {i} about my home loan repayments" for i in range(names.LABEL_MIN_EXAMPLES)]}]})

    name: LabelName
    description: str = Field(default="", max_length=500)
    examples: list[ExampleText] = Field(min_length=names.LABEL_MIN_EXAMPLES, max_length=names.LABEL_MAX_EXAMPLES,
                                        description=f"At least {names.LABEL_MIN_EXAMPLES} different texts")
    reason: str = Field(default="", max_length=500)


class RenameLabelRequest(_Request):
    to: LabelName
    reason: str = Field(default="", max_length=500)


class MergeLabelRequest(_Request):
    into: LabelName
    reason: str = Field(default="", max_length=500)


class RetireLabelRequest(_Request):
    replaced_by: LabelName | None
    reason: str = Field(default="", max_length=500)


class LabelChangeResponse(BaseModel):
    label: LabelOut
    revision: int
    change: str = Field(description="What was recorded, in words")


class ProposeFromReviewRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "mortgage",
                                                                "description": "Home loans: rates, repayments"}]})

    name: LabelName
    description: str = Field(default="", max_length=500)
