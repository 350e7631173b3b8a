"""/v1/labels: the label catalogue (read: anyone who may classify; change: the labels scope or admins group).

A change is recorded at once and made live by the next promotion (docs/learning-loop.md). Label names may hold
`/` and spaces: the routes take the name as a `path` parameter and percent-decode it once more, because API
Gateway REST APIs hand the Lambda the path still percent-encoded (`a%2Fb`) while other front ends decode it
(`a/b`); a name cannot contain `%`, so decoding twice is safe.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import unquote

from fastapi import APIRouter, Path, status

from categorizer.api.deps import ClassifierDep, ClassifyCaller, LabelsAdmin, LabelServiceDep
from categorizer.api.label_service import label_json
from categorizer.api.schemas import (
    ErrorResponse,
    LabelChangeResponse,
    LabelOut,
    LabelsResponse,
    MergeLabelRequest,
    ProposeLabelRequest,
    RenameLabelRequest,
    RetireLabelRequest,
)
from categorizer.registry import catalogue as cat

router = APIRouter(tags=["labels"])

READ_ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the classify permission"},
    503: {"model": ErrorResponse, "description": "The model or the registry is unavailable; retry"},
}
CHANGE_ERRORS = {
    400: {"model": ErrorResponse, "description": "The body is not valid JSON or UTF-8"},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "The token lacks the labels permission (scope or admins group)"},
    404: {"model": ErrorResponse, "description": "`label_not_found`: no such label in the catalogue"},
    409: {"model": ErrorResponse, "description": "`label_exists` (names are unique regardless of case, retired "
                                                 "ones included) or `label_conflict` (retired, a change pending)"},
    413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
    422: {"model": ErrorResponse, "description": "`validation_error` or `invalid_label_name`"},
    503: {"model": ErrorResponse, "description": "No registry keeps a catalogue here, or the model is unavailable"},
}
NamePath = Path(min_length=1, max_length=3 * 64, description="The label's name (percent-encode `/` and spaces)")


@router.get("/labels", summary="The label catalogue: active, proposed and retired labels",
            responses=READ_ERRORS)
async def list_labels(caller: ClassifyCaller, classifier: ClassifierDep, labels: LabelServiceDep) -> LabelsResponse:
    catalogue = labels.view(classifier)
    counts = labels.feedback_counts(catalogue)
    notices = cat.mismatch_notes(catalogue, champion=classifier.version, champion_labels=classifier.labels)
    return LabelsResponse(labels=[LabelOut(**label_json(e, counts)) for e in catalogue.labels],
                          revision=catalogue.revision, champion=classifier.version, notices=notices)


def _answer(catalogue: cat.Catalogue, name: str) -> LabelChangeResponse:
    entry = catalogue.require(name)
    change = catalogue.history[-1]
    words = entry.pending.describe(name) if entry.pending else f"propose {name!r}"
    return LabelChangeResponse(label=LabelOut(**label_json(entry, Counter())),
                               revision=catalogue.revision, change=f"{words} (recorded by {change.actor}; live at "
                                                                    "the next promotion)")


@router.post("/labels", status_code=status.HTTP_201_CREATED, summary="Propose a new label with example texts",
             responses=CHANGE_ERRORS)
async def propose_label(body: ProposeLabelRequest, caller: LabelsAdmin, classifier: ClassifierDep,
                        labels: LabelServiceDep) -> LabelChangeResponse:
    catalogue = labels.change(classifier, caller, lambda c, actor: cat.propose(
        c, name=body.name, description=body.description, examples=body.examples, actor=actor, reason=body.reason))
    return _answer(catalogue, body.name)


@router.post("/labels/{name:path}/rename", summary="Rename a label (live at the next promotion)",
             responses=CHANGE_ERRORS)
async def rename_label(body: RenameLabelRequest, caller: LabelsAdmin, classifier: ClassifierDep,
                       labels: LabelServiceDep, name: str = NamePath) -> LabelChangeResponse:
    name = unquote(name)
    catalogue = labels.change(classifier, caller,
                       lambda c, actor: cat.rename(c, name, to=body.to, actor=actor, reason=body.reason))
    return _answer(catalogue, name)


@router.post("/labels/{name:path}/merge", summary="Merge a label into another (live at the next promotion)",
             responses=CHANGE_ERRORS)
async def merge_label(body: MergeLabelRequest, caller: LabelsAdmin, classifier: ClassifierDep,
                      labels: LabelServiceDep, name: str = NamePath) -> LabelChangeResponse:
    name = unquote(name)
    catalogue = labels.change(classifier, caller,
                       lambda c, actor: cat.merge(c, name, into=body.into, actor=actor, reason=body.reason))
    return _answer(catalogue, name)


@router.post("/labels/{name:path}/retire", summary="Retire a label, with or without a replacement",
             responses=CHANGE_ERRORS)
async def retire_label(body: RetireLabelRequest, caller: LabelsAdmin, classifier: ClassifierDep,
                       labels: LabelServiceDep, name: str = NamePath) -> LabelChangeResponse:
    name = unquote(name)
    catalogue = labels.change(classifier, caller, lambda c, actor: cat.retire(
        c, name, replaced_by=body.replaced_by, actor=actor, reason=body.reason))
    return _answer(catalogue, name)
