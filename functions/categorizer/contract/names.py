"""Names that the functions, the CDK app, the local stack and the tests must agree on, defined once.

Metric names (the functions emit them; monitoring alarms on and charts them), S3 key prefixes, OAuth scopes
and Cognito groups, and the shape of the DynamoDB tables (the adapters read and write them; infra and the
local stack create them from `TableShape`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

APP_NAME = "categorizer"
# Powertools Metrics (EMF): one namespace; the `service` dimension is `categorizer-<stage>` so that stages
# sharing an account never mix.
METRICS_NAMESPACE = "Categorizer"


def service_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


class MetricName(StrEnum):
    """Every custom metric. Each handler maps its outcomes to these in one table (tests check both ways)."""

    # API
    PREDICTIONS = "Predictions"  # texts classified
    LOW_CONFIDENCE_PREDICTIONS = "LowConfidencePredictions"  # predictions with needs_review
    OUT_OF_SCOPE_PREDICTIONS = "OutOfScopePredictions"  # predictions with out_of_scope (API and batch rows)
    FEEDBACK = "Feedback"  # feedback items stored
    FEEDBACK_DISAGREEMENT = "FeedbackDisagreement"  # 1 when correct_label != predicted_label, else 0
    # Review queue (API and batch)
    REVIEW_ITEMS_QUEUED = "ReviewItemsQueued"  # predictions that need review, written to the queue (or seen again)
    REVIEW_QUEUE_WRITE_FAILURES = "ReviewQueueWriteFailures"  # items not queued: the queue table failed
    REVIEW_DECISIONS = "ReviewDecisions"  # accept / correct decisions recorded (skips are not decisions)
    REVIEW_AGREEMENT = "ReviewAgreement"  # 1 when a decision accepted the predicted label, else 0
    # Review queue health (the scheduled review-queue-metrics function, one value per tick)
    REVIEW_QUEUE_DEPTH = "ReviewQueueDepth"  # open items
    REVIEW_QUEUE_OLDEST_ITEM_AGE = "ReviewQueueOldestItemAge"  # seconds since the oldest open item was queued; 0: empty
    REVIEW_QUEUE_READ_FAILURES = "ReviewQueueReadFailures"  # ticks that could not read the queue (nothing measured)
    # Batch
    ROWS_CLASSIFIED = "RowsClassified"
    ROWS_REJECTED = "RowsRejected"
    FILES_PROCESSED = "FilesProcessed"
    FILES_FAILED = "FilesFailed"  # whole-file failures (reported) and refused keys
    FILE_TRANSIENT_FAILURES = "FileTransientFailures"  # S3/SQS/model errors: the message is retried
    DUPLICATE_DELIVERIES = "DuplicateDeliveries"
    INVALID_NOTIFICATIONS = "InvalidNotifications"
    FILES_SPLIT = "FilesSplit"  # fanned out into chunk tasks
    CHUNKS_PROCESSED = "ChunksProcessed"
    # Learning loop
    TRAINING_JOBS_STARTED = "TrainingJobsStarted"  # start-training
    RETRAINING_SKIPPED = "RetrainingSkipped"  # start-training: too little new feedback, no champion
    TRAINING_JOBS_FAILED = "TrainingJobsFailed"  # promote: state change Failed / Stopped
    PROMOTIONS = "ModelsPromoted"  # promote
    PROMOTIONS_REJECTED = "PromotionsRejected"  # promote
    CONSECUTIVE_REJECTIONS = "ConsecutivePromotionRejections"  # promote: rejections since the last promotion


# OAuth: one resource server, a scope per permission (machines); Cognito groups grant people the same.
RESOURCE_SERVER_ID = APP_NAME
CLASSIFY_SCOPE_NAME = "classify"
FEEDBACK_SCOPE_NAME = "feedback"
REVIEW_SCOPE_NAME = "review"  # list, claim and decide review items
LABELS_SCOPE_NAME = "labels"  # change the label catalogue
CLASSIFY_SCOPE = f"{RESOURCE_SERVER_ID}/{CLASSIFY_SCOPE_NAME}"
FEEDBACK_SCOPE = f"{RESOURCE_SERVER_ID}/{FEEDBACK_SCOPE_NAME}"
REVIEW_SCOPE = f"{RESOURCE_SERVER_ID}/{REVIEW_SCOPE_NAME}"
LABELS_SCOPE = f"{RESOURCE_SERVER_ID}/{LABELS_SCOPE_NAME}"
CLASSIFY_GROUP = "classify"
FEEDBACK_GROUP = "feedback"
REVIEWERS_GROUP = "reviewers"
ADMINS_GROUP = "admins"
# The scope every Cognito user access token has (API Gateway lets it through; the app then checks groups).
USER_TOKEN_SCOPE = "aws.cognito.signin.user.admin"  # noqa: S105 - a scope name, not a secret
PASSWORD_MIN_LENGTH = 14  # Cognito password policy (also: upper, lower, digit and symbol required)

# Key layout in the buckets.
INGEST_PREFIX = "ingest/"
RESULTS_PREFIX = "results/"
# The batch fan-out's temporary objects (chunks, parts, plan) under the results prefix. The batch function may
# delete only here; a lifecycle rule expires what a job leaves behind.
WORK_FOLDER = "_work/"
RESULTS_WORK_PREFIX = f"{RESULTS_PREFIX}{WORK_FOLDER}"
MODELS_PREFIX = "models/"
TRAINING_PREFIX = "training/"  # base/, holdout/ (uploaded once, docs/deploy.md) and feedback/<job>/ exports
DECISIONS_PREFIX = "decisions/"  # promotion / rejection / rollback records
TRAINING_OUTPUT_PREFIX = "training-jobs/"  # SageMaker OutputDataConfig path in the model bucket
LABELS_PREFIX = "labels/"  # the label catalogue (catalogue.json, conditional writes; the bucket keeps versions)
LABEL_CATALOGUE_KEY = f"{LABELS_PREFIX}catalogue.json"
LABEL_MIN_EXAMPLES = 10  # POST /v1/labels: a proposed label starts with at least this many example texts
LABEL_MAX_EXAMPLES = 1000
LABEL_NAME_MAX = 64
# Letters, digits, `_ - . ? /` and inner spaces (no leading or trailing space): docs/api.md, "Labels".
LABEL_NAME_PATTERN = r"^[A-Za-z0-9_.?/-](?:[A-Za-z0-9_.?/ -]{0,62}[A-Za-z0-9_.?/-])?$"
# TRAINING_RECIPE: a model_build recipe (fast, full, auto), or this: the recipe that built the serving champion.
CHAMPION_RECIPE = "champion"
MODEL_CACHE_DIR = "/tmp/models"  # noqa: S108 - Lambda's only writable directory


# --- Tables ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str = "S"  # DynamoDB attribute type: S, N or B


@dataclass(frozen=True, kw_only=True)
class IndexShape:
    """A global secondary index (all attributes projected)."""

    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None


@dataclass(frozen=True, kw_only=True)
class TableShape:
    """A table's keys and TTL: what the adapter relies on. Infra and the local stack create tables from it."""

    logical_name: str  # "feedback": what a local stack or a test looks a table up by
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    ttl_attribute: str | None = None
    indexes: tuple[IndexShape, ...] = ()

    def create_table_kwargs(self, table_name: str) -> dict:
        """The boto3 `create_table` arguments (on-demand), for the local stack and the tests."""

        def schema(partition: KeyAttribute, sort: KeyAttribute | None) -> list[dict]:
            keys = [partition, *([sort] if sort else [])]
            return [{"AttributeName": key.name, "KeyType": kind}
                    for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)]

        attributes = {key.name: key.type for key in (self.partition_key, self.sort_key) if key}
        for index in self.indexes:
            attributes |= {key.name: key.type for key in (index.partition_key, index.sort_key) if key}
        kwargs = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": schema(self.partition_key, self.sort_key),
            "AttributeDefinitions": [{"AttributeName": name, "AttributeType": kind}
                                     for name, kind in attributes.items()],
        }
        if self.indexes:
            kwargs["GlobalSecondaryIndexes"] = [
                {"IndexName": index.name, "KeySchema": schema(index.partition_key, index.sort_key),
                 "Projection": {"ProjectionType": "ALL"}} for index in self.indexes]
        return kwargs


# Feedback: one item per feedback, pk = "FEEDBACK#<feedback id>" (docs/api.md has the key design).
FEEDBACK_TABLE = TableShape(logical_name="feedback", partition_key=KeyAttribute("pk"))
FEEDBACK_ITEM_PREFIX = "FEEDBACK#"


class ReviewOrder(StrEnum):
    """How `GET /v1/review` orders open items: each is a sparse index over the open items only."""

    UNCERTAIN = "uncertain"  # lowest confidence first
    NOVEL = "novel"  # highest novelty first (out-of-scope items lead: they pass the novelty threshold)
    RECENT = "recent"  # most recently queued first


# Review queue: one item per normalised text, pk = "REVIEW#<item id>". While an item is open it carries
# `open_queue` = "OPEN", the partition key of three sparse indexes (one per order); deciding it removes the
# attribute, so closed items leave every index. docs/api.md has the key design.
REVIEW_ITEM_PREFIX = "REVIEW#"
REVIEW_OPEN = "OPEN"
REVIEW_OPEN_ATTRIBUTE = KeyAttribute("open_queue")
REVIEW_INDEX_BY_ORDER: dict[ReviewOrder, IndexShape] = {
    ReviewOrder.UNCERTAIN: IndexShape(name="open-by-confidence", partition_key=REVIEW_OPEN_ATTRIBUTE,
                                      sort_key=KeyAttribute("confidence", "N")),
    ReviewOrder.NOVEL: IndexShape(name="open-by-novelty", partition_key=REVIEW_OPEN_ATTRIBUTE,
                                  sort_key=KeyAttribute("novelty", "N")),
    ReviewOrder.RECENT: IndexShape(name="open-by-time", partition_key=REVIEW_OPEN_ATTRIBUTE,
                                   sort_key=KeyAttribute("queued_at")),
}
# The index the queue's health is measured on (review-queue-metrics): its count, and its oldest open item first.
REVIEW_OPEN_BY_TIME = REVIEW_INDEX_BY_ORDER[ReviewOrder.RECENT]
REVIEW_TABLE = TableShape(logical_name="review", partition_key=KeyAttribute("pk"), ttl_attribute="expires_at",
                          indexes=tuple(REVIEW_INDEX_BY_ORDER.values()))
TABLES: tuple[TableShape, ...] = (FEEDBACK_TABLE, REVIEW_TABLE)
