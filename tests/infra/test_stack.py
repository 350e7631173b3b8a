"""What the synthesized stacks guarantee: auth on the API, least privilege, data settings, the batch wiring
without a recursion path, the learning loop, alarms, logs and tracing. One synth for the session."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from fastapi import APIRouter

from categorizer.api.deps import FeedbackCaller
from infra import config
from infra.config import FunctionName
from tests.infra.template_queries import as_list, grants, logical_id, render, role_statements

pytestmark = pytest.mark.slow  # one synth of both stacks per session (tests/infra/conftest.py)

STAGES = ("dev", "prod")
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
XRAY = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
FUNCTION_PREFIX = {FunctionName.API: "ApiFunction", FunctionName.BATCH: "BatchFunction",
                   FunctionName.START_TRAINING: "StartTrainingFunction", FunctionName.PROMOTE: "PromoteFunction",
                   FunctionName.REVIEW_QUEUE_METRICS: "ReviewQueueMetricsFunction"}


def _api_paths(resources: dict[str, dict]) -> dict[str, str]:
    """ApiGateway::Resource logical id -> full path."""
    api_resources = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::Resource"}

    def path(resource_id: str) -> str:
        props = api_resources[resource_id]
        parent = props["ParentId"]
        prefix = path(parent["Ref"]) if "Ref" in parent and parent["Ref"] in api_resources else ""
        return f"{prefix}/{props['PathPart']}"

    return {resource_id: path(resource_id) for resource_id in api_resources}


# --- API --------------------------------------------------------------------------------------------------


def _our_functions(synthesized, stage: str) -> dict[str, dict]:
    """Our functions (CDK's own custom-resource providers, e.g. dev's bucket emptier, left out)."""
    return {k: r for k, r in synthesized.resources(stage, "AWS::Lambda::Function").items()
            if str(r["Properties"].get("FunctionName", "")).startswith(f"categorizer-{stage}-")}


def _api_methods(resources: dict[str, dict]) -> dict[str, dict]:
    """"GET /v1/model" -> the ApiGateway::Method properties."""
    paths = _api_paths(resources)
    return {f"{r['Properties']['HttpMethod']} {paths[r['Properties']['ResourceId']['Ref']]}": r["Properties"]
            for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"}


PUBLIC_ROUTES = {"GET /v1/health", "GET /console", "GET /console/{asset}"}
CONSOLE_DATA_ROUTES = {"GET /v1/files", "POST /v1/files/uploads", "GET /v1/files/{upload_id}",
                       "GET /v1/model/report", "GET /v1/model/report/{name}", "GET /v1/model/history", "GET /v1/ops"}


@pytest.mark.parametrize("stage", STAGES)
def test_api_gateway_has_exactly_the_apps_routes_with_their_scopes(synthesized, stage):
    """The method list is derived from the app (categorizer.api.routes): compared here method by method."""
    from categorizer.api.routes import gateway_routes

    resources = synthesized.templates[stage]["Resources"]
    methods = _api_methods(resources)
    derived = {f"{r.method} {r.path}": r for r in gateway_routes()}
    assert set(methods) == set(derived)
    authorizer = logical_id(resources, "ApiAuthorizer", "AWS::ApiGateway::Authorizer")
    assert resources[authorizer]["Properties"]["Type"] == "COGNITO_USER_POOLS"
    for route, props in methods.items():
        assert props["Integration"]["Type"] == "AWS_PROXY", route
        if not derived[route].scopes:
            assert props["AuthorizationType"] == "NONE", route
            assert "AuthorizerId" not in props and "AuthorizationScopes" not in props, route
            continue
        assert props["AuthorizationType"] == "COGNITO_USER_POOLS", route
        assert props["AuthorizerId"] == {"Ref": authorizer}, route
        assert set(props["AuthorizationScopes"]) == {*derived[route].scopes, config.USER_TOKEN_SCOPE}, route
        assert ("RequestModels" in props) == (derived[route].body_schema is not None), route


@pytest.mark.parametrize("stage", STAGES)
def test_only_health_and_the_console_page_are_public_and_each_permission_has_its_scope(synthesized, stage):
    methods = _api_methods(synthesized.templates[stage]["Resources"])
    assert {route for route, props in methods.items() if props["AuthorizationType"] == "NONE"} == PUBLIC_ROUTES
    assert set(methods["POST /v1/classify"]["AuthorizationScopes"]) == {config.CLASSIFY_SCOPE,
                                                                       config.USER_TOKEN_SCOPE}
    assert set(methods["POST /v1/feedback"]["AuthorizationScopes"]) == {config.FEEDBACK_SCOPE,
                                                                       config.USER_TOKEN_SCOPE}
    # A machine token with only the classify scope never reaches the feedback route.
    assert config.CLASSIFY_SCOPE not in methods["POST /v1/feedback"]["AuthorizationScopes"]
    for route in ("POST /v1/classify", "POST /v1/feedback"):
        assert "RequestValidatorId" in methods[route] and methods[route]["RequestModels"], route


EXTRA = APIRouter()


@EXTRA.post("/v1/extra")
async def _extra(caller: FeedbackCaller) -> dict:  # a route a newcomer adds to the app, and nowhere else
    return {}


def test_a_route_added_to_the_app_reaches_the_gateway_list_with_its_permission():
    from categorizer.api.app import routed_app
    from categorizer.api.routes import gateway_routes

    app = routed_app()
    app.include_router(EXTRA)
    (route,) = [r for r in gateway_routes(app) if r.path == "/v1/extra"]
    assert (route.method, route.scopes) == ("POST", (config.FEEDBACK_SCOPE,))


def test_every_console_page_path_is_served_through_a_gateway_page_resource():
    """The page routes are not in the document: each must fall under one of GATEWAY_PAGE_ROUTES."""
    import re

    from categorizer.api.routers import console

    patterns = [re.compile("^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(path)) + "/?$")
                for _, path in console.GATEWAY_PAGE_ROUTES]
    for route in console.router.routes:
        assert any(p.match(route.path) for p in patterns), route.path


@pytest.mark.parametrize("stage", STAGES)
def test_console_data_routes_need_the_classify_permission_and_the_upload_body_is_validated(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    methods = _api_methods(resources)
    authorizer = logical_id(resources, "ApiAuthorizer", "AWS::ApiGateway::Authorizer")
    for route in CONSOLE_DATA_ROUTES:
        props = methods[route]
        assert props["AuthorizationType"] == "COGNITO_USER_POOLS", route
        assert props["AuthorizerId"] == {"Ref": authorizer}, route
        # Machines with the classify scope, people through their token (the app checks the classify group);
        # a feedback-only machine token is stopped at the gateway.
        assert set(props["AuthorizationScopes"]) == {config.CLASSIFY_SCOPE, config.USER_TOKEN_SCOPE}, route
    upload = methods["POST /v1/files/uploads"]
    model = render(upload["RequestModels"]["application/json"])
    assert resources[model]["Properties"]["Schema"]["required"] == ["filename"]
    validator = resources[upload["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True
    # The console page and its files are the only public routes besides the health check, and config.json is
    # served through the public `{asset}` resource (routers/console.py serves it at /console/config.json).
    paths = set(_api_paths(resources).values())
    assert {"/console", "/console/{asset}"} <= paths and "/console/config.json" not in paths


@pytest.mark.parametrize("stage", STAGES)
def test_report_plots_pass_as_binary(synthesized, stage):
    (api,) = synthesized.resources(stage, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == ["image/png"]


@pytest.mark.parametrize("stage", STAGES)
def test_ingest_bucket_accepts_browser_upload_posts_from_the_api_origin_only(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    ingest = logical_id(resources, "FilesIngest", "AWS::S3::Bucket")
    (rest_api,) = synthesized.resources(stage, "AWS::ApiGateway::RestApi")
    (rule,) = resources[ingest]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"]
    assert [render(origin) for origin in rule["AllowedOrigins"]] == [
        f"https://{rest_api}.execute-api.AWS::Region.AWS::URLSuffix"]
    assert rule["AllowedHeaders"] == ["content-type"]
    # No other bucket is reachable from a browser page.
    cors = [k for k, r in synthesized.resources(stage, "AWS::S3::Bucket").items()
            if "CorsConfiguration" in r["Properties"]]
    assert cors == [ingest]


@pytest.mark.parametrize("stage", STAGES)
def test_api_function_gets_the_console_settings(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    fn = resources[logical_id(resources, "ApiFunction", "AWS::Lambda::Function")]
    variables = fn["Properties"]["Environment"]["Variables"]

    def bucket_name(stem: str) -> str:
        return render(resources[logical_id(resources, stem, "AWS::S3::Bucket")]["Properties"]["BucketName"])

    assert render(variables["INGEST_BUCKET"]) == bucket_name("FilesIngest")
    assert render(variables["RESULTS_BUCKET"]) == bucket_name("FilesResults")
    assert render(variables["MODEL_BUCKET"]) == bucket_name("ModelsBucket")
    assert (variables["INGEST_PREFIX"], variables["RESULTS_PREFIX"], variables["DECISIONS_PREFIX"]) == (
        config.INGEST_PREFIX, config.RESULTS_PREFIX, config.DECISIONS_PREFIX)
    clients = {r["Properties"]["ClientName"]: k for k, r in resources.items()
               if r["Type"] == "AWS::Cognito::UserPoolClient"}
    # The page signs people in with the user/password client, never the machine client (it has a secret).
    assert variables["CONSOLE_CLIENT_ID"] == {"Ref": clients[f"categorizer-{stage}-user"]}
    assert render(variables["USER_POOL_ID"]) == logical_id(resources, "IdentityUserPool", "AWS::Cognito::UserPool")
    assert render(variables["FEEDBACK_TABLE"]) == f"categorizer-{stage}-feedback"


@pytest.mark.parametrize("stage", STAGES)
def test_api_stage_throttles_logs_traces_and_has_a_usage_plan(synthesized, stage):
    settings = config.load_stage(stage)
    template = synthesized.template(stage)
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": stage,
        "TracingEnabled": True,
        "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp('"status"')},
        "MethodSettings": Match.array_with([Match.object_like({
            "HttpMethod": "*", "ResourcePath": "/*", "DataTraceEnabled": False, "MetricsEnabled": True,
            "ThrottlingRateLimit": settings.api_throttle_rate,
            "ThrottlingBurstLimit": settings.api_throttle_burst,
        })]),
    })
    template.has_resource_properties("AWS::ApiGateway::UsagePlan", {
        "Quota": {"Limit": settings.api_quota_per_day, "Period": "DAY"},
        "Throttle": {"RateLimit": settings.api_throttle_rate, "BurstLimit": settings.api_throttle_burst},
    })
    # Gateway-made errors keep the app's error shape; 401 says how to authenticate.
    template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {
        "ResponseType": "UNAUTHORIZED", "StatusCode": "401",
        "ResponseParameters": {"gatewayresponse.header.WWW-Authenticate": Match.string_like_regexp("Bearer")},
        "ResponseTemplates": {"application/json": Match.string_like_regexp('"error"')},
    })
    template.has_resource_properties("AWS::ApiGateway::GatewayResponse", {
        "ResponseType": "BAD_REQUEST_BODY", "StatusCode": "422"})


def test_waf_protects_prod_only(synthesized):
    assert synthesized.resources("dev", "AWS::WAFv2::WebACL") == {}
    prod = synthesized.template("prod")
    prod.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)
    prod.has_resource_properties("AWS::WAFv2::WebACL", {
        "Scope": "REGIONAL",
        "Rules": Match.array_with([Match.object_like({
            "Name": "AWSManagedRulesCommonRuleSet",
            # Classify bodies exceed the managed 8 KB body-size rule: it only counts.
            "Statement": {"ManagedRuleGroupStatement": Match.object_like({
                "RuleActionOverrides": [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]})},
        }), Match.object_like({"Name": "RateLimitPerIp", "Action": {"Block": {}}})]),
    })


@pytest.mark.parametrize("stage", STAGES)
def test_cognito_pool_clients_scopes_and_groups(synthesized, stage):
    template = synthesized.template(stage)
    template.has_resource_properties("AWS::Cognito::UserPool", {
        "Policies": {"PasswordPolicy": {"MinimumLength": config.PASSWORD_MIN_LENGTH, "RequireLowercase": True,
                                        "RequireUppercase": True, "RequireNumbers": True, "RequireSymbols": True,
                                        "TemporaryPasswordValidityDays": 3,
                                        **({"PasswordHistorySize": 5} if stage == "prod" else {})}},
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
    })
    template.has_resource_properties("AWS::Cognito::UserPoolResourceServer", {
        "Identifier": config.RESOURCE_SERVER_ID,
        "Scopes": [{"ScopeName": name, "ScopeDescription": Match.any_value()}
                   for name, _ in config.USER_POOL.scopes],
    })
    clients = {r["Properties"]["ClientName"]: r["Properties"]
               for r in synthesized.resources(stage, "AWS::Cognito::UserPoolClient").values()}
    machine, user = clients[f"categorizer-{stage}-machine"], clients[f"categorizer-{stage}-user"]
    server = logical_id(synthesized.templates[stage]["Resources"], "IdentityUserPoolResourceServer")
    assert machine["GenerateSecret"] is True and machine["AllowedOAuthFlows"] == ["client_credentials"]
    assert [render(scope) for scope in machine["AllowedOAuthScopes"]] == [
        f"{server}/{name}" for name in (config.CLASSIFY_SCOPE_NAME, config.FEEDBACK_SCOPE_NAME,
                                        config.REVIEW_SCOPE_NAME, config.LABELS_SCOPE_NAME)]
    assert machine.get("ExplicitAuthFlows", ["ALLOW_REFRESH_TOKEN_AUTH"]) == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert user["GenerateSecret"] is False and "AllowedOAuthFlows" not in user
    assert {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"} <= set(user["ExplicitAuthFlows"])
    groups = {r["Properties"]["GroupName"]
              for r in synthesized.resources(stage, "AWS::Cognito::UserPoolGroup").values()}
    assert groups == {config.CLASSIFY_GROUP, config.FEEDBACK_GROUP, config.REVIEWERS_GROUP, config.ADMINS_GROUP}


# --- Least privilege ---------------------------------------------------------------------------------------


def _role_of(resources: dict[str, dict], function: FunctionName) -> str:
    fn = logical_id(resources, FUNCTION_PREFIX[function], "AWS::Lambda::Function")
    return resources[fn]["Properties"]["Role"]["Fn::GetAtt"][0]


def _expected_grants(resources: dict[str, dict], function: FunctionName) -> set[tuple[str, str]]:
    models = logical_id(resources, "ModelsBucket", "AWS::S3::Bucket") + ".Arn"
    ingest = logical_id(resources, "FilesIngest", "AWS::S3::Bucket") + ".Arn"
    results = logical_id(resources, "FilesResults", "AWS::S3::Bucket") + ".Arn"
    table = logical_id(resources, "TablesFeedbackTable", "AWS::DynamoDB::GlobalTable") + ".Arn"
    review = logical_id(resources, "TablesReviewTable", "AWS::DynamoDB::GlobalTable") + ".Arn"
    review_indexes = {("dynamodb:Query", f"{review}/index/{index.name}") for index in config.REVIEW_TABLE.indexes}
    stage = next(r["Properties"]["TopicName"] for r in resources.values() if r["Type"] == "AWS::SNS::Topic")
    stage = stage.split("-")[1]
    champion_arn = f"arn:AWS::Partition:ssm:AWS::Region:AWS::AccountId:parameter/categorizer/{stage}/champion"
    logs = logical_id(resources, FUNCTION_PREFIX[function] + "Logs", "AWS::Logs::LogGroup") + ".Arn"
    jobs = "arn:AWS::Partition:sagemaker:AWS::Region:AWS::AccountId:training-job/categorizer-{stage}-*"

    def objects(bucket: str, actions: tuple[str, ...], *prefixes: str) -> set[tuple[str, str]]:
        return {(a, f"{bucket}/{p}*") for a in actions for p in prefixes}

    def listing(bucket: str, *prefixes: str) -> tuple[str, str]:
        return ("s3:ListBucket", f"{bucket} if StringLike:s3:prefix={sorted(p + '*' for p in prefixes)}")

    read, write = ("s3:GetObject", "s3:GetObjectVersion"), ("s3:PutObject", "s3:AbortMultipartUpload")
    common = {(a, logs) for a in LOGS} | {(a, "*") for a in XRAY}
    if function is FunctionName.API:
        # Serving model and promotion history; the console's uploads (sign only), results and ops page (Scan);
        # the label catalogue (read, and changed by /v1/labels with conditional writes).
        return common | objects(models, read, "models/", "decisions/", "labels/") | {
            listing(models, "models/", "decisions/", "labels/")} | objects(models, write, "labels/") | {
            ("ssm:GetParameter", champion_arn),
            *((f"dynamodb:{a}", table) for a in ("PutItem", "GetItem", "Scan"))} | \
            {("dynamodb:UpdateItem", review), ("dynamodb:GetItem", review)} | review_indexes | \
            objects(ingest, ("s3:PutObject",), "ingest/") | {listing(ingest, "ingest/")} | \
            objects(results, ("s3:GetObject",), "results/") | {listing(results, "results/")}
    if function is FunctionName.BATCH:
        queue = logical_id(resources, "IngestQueue", "AWS::SQS::Queue") + ".Arn"
        return common | objects(models, read, "models/") | {listing(models, "models/")} | {
            ("ssm:GetParameter", champion_arn)} | objects(ingest, read, "ingest/") | {listing(ingest, "ingest/")} | \
            objects(results, read + write, "results/") | {listing(results, "results/")} | {
            (f"sqs:{a}", queue) for a in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
                                          "GetQueueAttributes", "GetQueueUrl")} | {
            # Chunk fan-out: send tasks to its own queue, delete only its work folder.
            ("sqs:SendMessage", queue), ("s3:DeleteObject", f"{results}/{config.RESULTS_WORK_PREFIX}*"),
            ("dynamodb:UpdateItem", review)}  # rows that need review go to the review queue
    if function is FunctionName.REVIEW_QUEUE_METRICS:
        # Counts the open items and reads the oldest: Query on the one index it uses, nothing on the table.
        return common | {("dynamodb:Query", f"{review}/index/{config.REVIEW_OPEN_BY_TIME.name}")}
    failures = logical_id(resources, "LearningLoopFailures", "AWS::SQS::Queue") + ".Arn"
    send_failures = {(f"sqs:{a}", failures) for a in ("SendMessage", "GetQueueAttributes", "GetQueueUrl")}
    jobs = jobs.format(stage=stage)
    if function is FunctionName.START_TRAINING:
        sagemaker_role = logical_id(resources, "TrainingRole", "AWS::IAM::Role") + ".Arn"
        return common | send_failures | objects(models, read, "training/", "models/", "labels/") | {
            listing(models, "training/", "models/", "labels/")} | objects(models, write, "training/") | {
            ("ssm:GetParameter", champion_arn),
            ("dynamodb:Scan", table),
            *((f"sagemaker:{a}", jobs) for a in ("CreateTrainingJob", "DescribeTrainingJob", "AddTags")),
            ("iam:PassRole", f"{sagemaker_role} if StringEquals:iam:PassedToService=['sagemaker.amazonaws.com']")}
    prefixes = ("training-jobs/", "training/", "models/", "decisions/", "labels/")
    return common | send_failures | objects(models, read, *prefixes) | {listing(models, *prefixes)} | \
        objects(models, write, "models/", "decisions/", "labels/") | {
        ("ssm:GetParameter", champion_arn), ("ssm:PutParameter", champion_arn),
        ("dynamodb:Scan", table),
        ("sagemaker:DescribeTrainingJob", jobs)}


@pytest.mark.parametrize("function", list(FunctionName))
@pytest.mark.parametrize("stage", STAGES)
def test_each_function_role_holds_exactly_its_grants(synthesized, stage, function):
    resources = synthesized.templates[stage]["Resources"]
    role = _role_of(resources, function)
    assert resources[role]["Properties"].get("ManagedPolicyArns") is None  # no AWS managed policies
    assert grants(resources, role) == _expected_grants(resources, function)


@pytest.mark.parametrize("stage", STAGES)
def test_no_iam_policy_allows_wildcard_actions(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    roles = [k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    for role in roles:
        for statement in role_statements(resources, role):
            for action in as_list(statement["Action"]):
                assert "*" not in action, (role, action)
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":  # none today; keep them honest if added
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                assert all("*" not in a for a in as_list(statement["Action"]))


@pytest.mark.parametrize("stage", STAGES)
def test_sagemaker_role_reads_training_data_writes_job_output_and_is_confined_to_stage_jobs(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    role = logical_id(resources, "TrainingRole", "AWS::IAM::Role")
    trust = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert render(trust["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(f"training-job/categorizer-{stage}-*")
    pairs = grants(resources, role)
    models = logical_id(resources, "ModelsBucket", "AWS::S3::Bucket") + ".Arn"
    writes = {r for a, r in pairs if a in ("s3:PutObject", "s3:AbortMultipartUpload")}
    assert writes == {f"{models}/training-jobs/*"}
    assert ("s3:GetObject", f"{models}/training/*") in pairs
    assert {a for a, _ in pairs if a.startswith("ecr:")} == {
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage"}


# --- Data --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_feedback_table_is_on_demand_with_pitr_encryption_and_the_api_key_design(synthesized, stage):
    retain = stage == "prod"
    template = synthesized.template(stage)
    template.resource_count_is("AWS::DynamoDB::GlobalTable", 2)  # feedback, review queue
    template.has_resource("AWS::DynamoDB::GlobalTable", {
        "DeletionPolicy": "RetainExceptOnCreate" if retain else "Delete",
        "Properties": Match.object_like({
            "TableName": f"categorizer-{stage}-feedback",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
            "GlobalSecondaryIndexes": Match.absent(),  # nothing reads by another key
            "Replicas": [Match.object_like({
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                # It would make a failed first create's rollback fail (DeleteTable refuses): the retain policy
                # and the stack's termination protection guard the data instead.
                "DeletionProtectionEnabled": Match.absent(),
            })],
        }),
    })


@pytest.mark.parametrize("stage", STAGES)
def test_every_bucket_denies_plain_http_blocks_public_access_encrypts_and_expires(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    buckets = synthesized.resources(stage, "AWS::S3::Bucket")
    assert len(buckets) == 4
    policies = {render(r["Properties"]["Bucket"]): r["Properties"]["PolicyDocument"]["Statement"]
                for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"}
    log_bucket = logical_id(resources, "AccessLogsBucket", "AWS::S3::Bucket")
    for bucket_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}, bucket_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert props["LifecycleConfiguration"]["Rules"], bucket_id
        assert bucket["DeletionPolicy"] == ("RetainExceptOnCreate" if stage == "prod" else "Delete")
        if bucket_id != log_bucket:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket}, bucket_id
        denies_http = [s for s in policies[bucket_id] if s["Effect"] == "Deny"
                       and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert denies_http, f"{bucket_id} accepts plain HTTP"
        assert any(s.get("Condition", {}).get("NumericLessThan", {}).get("s3:TlsVersion") == 1.2
                   for s in policies[bucket_id]), bucket_id


@pytest.mark.parametrize("stage", STAGES)
def test_queues_and_alarm_topic_are_encrypted_and_deny_plain_http(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    queues = synthesized.resources(stage, "AWS::SQS::Queue")
    assert all(q["Properties"].get("SqsManagedSseEnabled") for q in queues.values())
    protected = set()
    for resource in resources.values():
        if resource["Type"] in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            if any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                   for s in statements if "Condition" in s and "Bool" in s["Condition"]):
                key = "Queues" if resource["Type"] == "AWS::SQS::QueuePolicy" else "Topics"
                protected |= {render(x) for x in resource["Properties"][key]}
    assert {f"{q}" for q in queues} <= protected
    topic = synthesized.resources(stage, "AWS::SNS::Topic")
    (topic_id, topic_resource), = topic.items()
    assert "KmsMasterKeyId" in topic_resource["Properties"]
    assert topic_id in protected


# --- Batch wiring --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_ingest_notifications_fire_only_under_the_ingest_prefix_into_the_queue(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    ingest = logical_id(resources, "FilesIngest", "AWS::S3::Bucket")
    queue = logical_id(resources, "IngestQueue", "AWS::SQS::Queue")
    notified = {k: r["Properties"]["NotificationConfiguration"] for k, r in resources.items()
                if r["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in r["Properties"]}
    assert list(notified) == [ingest]
    (rule,) = notified[ingest]["QueueConfigurations"]
    assert rule["Event"] == "s3:ObjectCreated:*"
    assert rule["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert rule["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": config.INGEST_PREFIX}]
    assert "LambdaConfigurations" not in notified[ingest] and "TopicConfigurations" not in notified[ingest]
    # S3 may only send from this bucket and account; the bucket waits for that policy.
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::SQS::QueuePolicy"
                 and r["Properties"]["Queues"] == [{"Ref": queue}]]
    allow = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allow] == [{"Service": "s3.amazonaws.com"}]
    assert render(allow[0]["Condition"]["ArnEquals"]["aws:SourceArn"]).startswith(
        f"arn:AWS::Partition:s3:::categorizer-{stage}-ingest-")
    policy_id = next(k for k, r in resources.items() if r is policy)
    assert policy_id in resources[ingest]["DependsOn"]


@pytest.mark.parametrize("stage", STAGES)
def test_queue_has_a_dlq_and_the_batch_function_reports_partial_failures(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    queue = logical_id(resources, "IngestQueue", "AWS::SQS::Queue")
    dlq = logical_id(resources, "IngestQueueDeadLetters", "AWS::SQS::Queue")
    props = resources[queue]["Properties"]
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                                      "maxReceiveCount": settings.max_receive_count}
    assert props["VisibilityTimeout"] == 6 * settings.batch_function.timeout_seconds
    assert resources[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    batch = logical_id(resources, "BatchFunction", "AWS::Lambda::Function")
    (mapping,) = synthesized.resources(stage, "AWS::Lambda::EventSourceMapping").values()
    assert {k: v for k, v in mapping["Properties"].items() if k != "Tags"} == {
        "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]}, "FunctionName": {"Ref": batch},
        "BatchSize": settings.batch_size, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": settings.batch_max_concurrency},
    }


@pytest.mark.parametrize("stage", STAGES)
def test_no_recursion_path_from_batch_outputs_back_to_the_batch_function(synthesized, stage):
    """Outputs go to a bucket without notifications; the function can never write where notifications fire."""
    resources = synthesized.templates[stage]["Resources"]
    ingest = logical_id(resources, "FilesIngest", "AWS::S3::Bucket")
    results = logical_id(resources, "FilesResults", "AWS::S3::Bucket")
    assert "NotificationConfiguration" not in resources[results]["Properties"]
    written = {r for a, r in grants(resources, _role_of(resources, FunctionName.BATCH))
               if a in ("s3:PutObject", "s3:AbortMultipartUpload")}
    assert written == {f"{results}.Arn/{config.RESULTS_PREFIX}*"}
    assert not any(ingest in r for r in written)
    # Only the API function may put into the ingest bucket, and only to sign the console's presigned uploads
    # (people drop files); nothing S3 notifies can invoke it: the queue's only consumer is the batch function.
    ingest_writers = {function for function in FunctionName
                      for action, resource in grants(resources, _role_of(resources, function))
                      if action.startswith("s3:Put") and ingest in resource}
    assert ingest_writers == {FunctionName.API}
    (mapping,) = synthesized.resources(stage, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionName"] == {
        "Ref": logical_id(resources, "BatchFunction", "AWS::Lambda::Function")}
    # The settings the function reads agree: outputs in the results bucket, outside the ingest prefix.
    env = config.function_environment(FunctionName.BATCH, stage=config.load_stage(stage),
                                      names=config.resource_names(stage, account="1", region="r"))
    assert env["RESULTS_BUCKET"] != config.resource_names(stage, account="1", region="r").ingest_bucket
    assert not env["RESULTS_PREFIX"].startswith(env["INGEST_PREFIX"])


@pytest.mark.parametrize("stage", STAGES)
def test_batch_function_fans_out_on_its_own_ingest_queue(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    queue = logical_id(resources, "IngestQueue", "AWS::SQS::Queue")
    fn = resources[logical_id(resources, "BatchFunction", "AWS::Lambda::Function")]
    variables = fn["Properties"]["Environment"]["Variables"]
    assert variables["BATCH_QUEUE_URL"] == {"Ref": queue}  # an SQS queue's Ref is its URL
    assert variables["FANOUT_BYTES"] == str(settings.fanout.fanout_bytes) == str(32 * 1024 * 1024)
    assert variables["CHUNK_ROWS"] == str(settings.fanout.chunk_rows) == "51200"
    # Only the batch function gets the queue URL (the other functions never send chunk tasks).
    others = [r["Properties"]["Environment"]["Variables"] for r in _our_functions(synthesized, stage).values()
              if r is not fn]
    assert others and not any("BATCH_QUEUE_URL" in v for v in others)


@pytest.mark.parametrize("stage", STAGES)
def test_results_bucket_aborts_incomplete_uploads_after_a_day_and_expires_fanout_work(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    results = resources[logical_id(resources, "FilesResults", "AWS::S3::Bucket")]
    rules = {r["Id"]: r for r in results["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-uploads"] == {
        "Id": "abort-incomplete-uploads", "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    assert rules["expire-fanout-work"] == {
        "Id": "expire-fanout-work", "Status": "Enabled", "Prefix": "results/_work/", "ExpirationInDays": 7,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}
    assert rules["expire-results"]["ExpirationInDays"] == settings.results_expiration_days
    assert "Prefix" not in rules["abort-incomplete-uploads"]  # every key: results, reports and work objects


# --- Functions, logs, tracing, async failures --------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_traces_logs_to_its_own_group_with_retention_and_uses_the_layer(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    functions = _our_functions(synthesized, stage)
    assert len(functions) == len(FunctionName)
    layer = logical_id(resources, "CodeDependencies", "AWS::Lambda::LayerVersion")
    for function_id, function in functions.items():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, function_id
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["x86_64"]
        assert props["Layers"] == [{"Ref": layer}]
        group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
        group = resources[group_id]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == settings.log_retention_days
        assert group["Properties"]["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert {f["Properties"]["Handler"] for f in functions.values()} == set(config.HANDLERS.values())


@pytest.mark.parametrize("stage", STAGES)
def test_function_sizing_and_onnx_threads_follow_the_stage_config(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    for function, prefix in FUNCTION_PREFIX.items():
        props = resources[logical_id(resources, prefix, "AWS::Lambda::Function")]["Properties"]
        sizing = config.function_sizing(settings, function)
        assert props["MemorySize"] == sizing.memory_mb
        assert props["Timeout"] == sizing.timeout_seconds
        assert props["EphemeralStorage"] == {"Size": sizing.ephemeral_storage_mb}
        assert props.get("ReservedConcurrentExecutions") == sizing.reserved_concurrency
        variables = props["Environment"]["Variables"]
        if function is FunctionName.REVIEW_QUEUE_METRICS:  # no model: no ONNX threads to size
            assert "ONNX_THREADS" not in variables
        else:
            assert variables["ONNX_THREADS"] == str(config.onnx_threads_for(sizing.memory_mb))
        assert variables["STAGE"] == stage
        assert variables["POWERTOOLS_SERVICE_NAME"] == config.service_name(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_asynchronously_invoked_functions_have_an_on_failure_destination(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    failures = logical_id(resources, "LearningLoopFailures", "AWS::SQS::Queue")
    configs = {render(r["Properties"]["FunctionName"]): r["Properties"]
               for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"}
    invoked_by_events = {render(t["Arn"]).removesuffix(".Arn") for r in resources.values()
                         if r["Type"] == "AWS::Events::Rule" for t in r["Properties"]["Targets"]}
    learning_loop = {logical_id(resources, "StartTrainingFunction", "AWS::Lambda::Function"),
                     logical_id(resources, "PromoteFunction", "AWS::Lambda::Function")}
    review_metrics = logical_id(resources, "ReviewQueueMetricsFunction", "AWS::Lambda::Function")
    assert invoked_by_events == learning_loop | {review_metrics}
    for function_id in learning_loop:
        assert configs[function_id]["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::GetAtt": [failures, "Arn"]}}}
        assert configs[function_id]["MaximumRetryAttempts"] == 2
    # A review-queue measurement is superseded by the next tick: no retries, no failure queue (alarms instead).
    assert "DestinationConfig" not in configs[review_metrics]
    assert configs[review_metrics]["MaximumRetryAttempts"] == 0
    for rule in synthesized.resources(stage, "AWS::Events::Rule").values():
        (target,) = rule["Properties"]["Targets"]
        if render(target["Arn"]).removesuffix(".Arn") == review_metrics:
            assert "DeadLetterConfig" not in target
            assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
        else:
            assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [failures, "Arn"]}}


# --- Learning loop -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_retraining_schedule_and_job_state_rule(synthesized, stage):
    settings = config.load_stage(stage)
    template = synthesized.template(stage)
    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": settings.retrain_schedule,
        "State": "ENABLED" if settings.retrain_enabled else "DISABLED",
    })
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.sagemaker"], "detail-type": ["SageMaker Training Job State Change"],
            "detail": {"TrainingJobName": [{"prefix": f"categorizer-{stage}-"}],
                       "TrainingJobStatus": ["Completed", "Failed", "Stopped"]},
        },
        "State": "ENABLED",
    })
    # The champion pointer is not a CloudFormation resource (a deploy would rewrite its value).
    template.resource_count_is("AWS::SSM::Parameter", 0)


def test_schedule_is_off_in_dev_and_on_in_prod(synthesized):
    def schedule_state(stage: str) -> str:
        (rule,) = [r for r in synthesized.resources(stage, "AWS::Events::Rule").values()
                   if r["Properties"].get("Name") == f"categorizer-{stage}-retrain"]
        return rule["Properties"]["State"]

    assert (schedule_state("dev"), schedule_state("prod")) == ("DISABLED", "ENABLED")


@pytest.mark.parametrize("stage", STAGES)
def test_start_training_gets_everything_a_job_request_needs(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    fn = resources[logical_id(resources, "StartTrainingFunction", "AWS::Lambda::Function")]
    variables = fn["Properties"]["Environment"]["Variables"]
    assert render(variables["TRAINING_ROLE_ARN"]) == logical_id(resources, "TrainingRole", "AWS::IAM::Role") + ".Arn"
    image = render(variables["TRAINING_IMAGE_URI"])
    assert image.startswith("FindInMap(TrainingDlcRegistry")
    assert image.endswith(f".dkr.ecr.AWS::Region.amazonaws.com/pytorch-training:{settings.training_image_tag}")
    # The source archive is a CDK file asset (sourcedir.tar.gz when bundled: tests/infra/test_layer.py).
    source_uri = render(variables["TRAINING_SOURCE_URI"])
    assert source_uri.startswith("s3://cdk-hnb659fds-assets-AWS::AccountId-AWS::Region/")
    assert source_uri.rsplit("/", 1)[1].split(".")[0] == synthesized.stacks[stage].node.find_child(
        "Training").source.asset_hash
    assert variables["TRAINING_ENTRY_POINT"] == "model_build/sagemaker_entry.py"
    assert variables["TRAINING_USE_SPOT"] == str(settings.learning.training_use_spot).lower()
    assert variables["TRAINING_JOB_PREFIX"] == f"categorizer-{stage}"
    mapping = synthesized.templates[stage]["Mappings"]
    (registry,) = [m for k, m in mapping.items() if k.startswith("TrainingDlcRegistry")]
    assert registry["us-east-1"] == {"account": "763104351884"}
    assert registry["ap-east-1"] == {"account": "871362719292"}


# --- Monitoring ---------------------------------------------------------------------------------------------

EXPECTED_ALARMS = {
    "Api5xxRate", "ApiLatencyP99", "IngestDlqMessages", "LearningLoopFailuresMessages", "RejectedRowRatio",
    "TrainingJobFailed", "PromotionRejectedRepeatedly", "LowConfidenceShare", "FeedbackDisagreementRate",
    "FileTransientFailures", "OutOfScopeShare", "ReviewQueueWriteFailures", "ReviewQueueOldestItemAge",
    "ReviewQueueReadFailures",
    *(f"{name}{kind}" for name in ("Api", "Batch", "StartTraining", "Promote", "ReviewQueueMetrics")
      for kind in ("Errors", "Throttles")),
}


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_exists_notifies_the_topic_and_carries_a_runbook(synthesized, stage):
    resources = synthesized.templates[stage]["Resources"]
    topic = logical_id(resources, "MonitoringAlarmTopic", "AWS::SNS::Topic")
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {f"categorizer-{stage}-{name}" for name in EXPECTED_ALARMS}
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
        assert alarm["OKActions"] == [{"Ref": topic}], name
        assert alarm["AlarmDescription"].startswith("Runbook: ") and len(alarm["AlarmDescription"]) > 60, name
        assert alarm["TreatMissingData"] == "notBreaching"


def test_alarm_thresholds_differ_by_stage(synthesized):
    def threshold(stage: str, name: str) -> float:
        (alarm,) = [r["Properties"] for r in synthesized.resources(stage, "AWS::CloudWatch::Alarm").values()
                    if r["Properties"]["AlarmName"] == f"categorizer-{stage}-{name}"]
        return alarm["Threshold"]

    for name, field in (("Api5xxRate", "api_5xx_rate_percent"), ("ApiLatencyP99", "api_p99_latency_ms"),
                        ("LowConfidenceShare", "low_confidence_share"), ("OutOfScopeShare", "out_of_scope_share")):
        assert threshold("dev", name) == getattr(config.load_stage("dev").alarms, field)
        assert threshold("prod", name) == getattr(config.load_stage("prod").alarms, field)
        assert threshold("prod", name) < threshold("dev", name)


@pytest.mark.parametrize("stage", STAGES)
def test_review_table_has_its_ttl_and_one_sparse_index_per_order(synthesized, stage):
    synthesized.template(stage).has_resource("AWS::DynamoDB::GlobalTable", {
        "DeletionPolicy": "RetainExceptOnCreate" if stage == "prod" else "Delete",
        "Properties": Match.object_like({
            "TableName": f"categorizer-{stage}-review",
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "GlobalSecondaryIndexes": [Match.object_like({
                "IndexName": index.name,
                "KeySchema": [{"AttributeName": "open_queue", "KeyType": "HASH"},
                              {"AttributeName": index.sort_key.name, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}) for index in config.REVIEW_TABLE.indexes],
            "Replicas": [Match.object_like({
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})],
        }),
    })


@pytest.mark.parametrize("stage", STAGES)
def test_custom_metric_alarms_read_the_functions_namespace_and_service_dimension(synthesized, stage):
    seen = set()
    for alarm in synthesized.resources(stage, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q]
        if "MetricName" in props:
            metrics.append(props)
        for metric in metrics:
            if metric.get("Namespace") == config.METRICS_NAMESPACE:
                assert metric["Dimensions"] == [{"Name": "service", "Value": config.service_name(stage)}]
                seen.add(metric["MetricName"])
    assert seen == {"RowsClassified", "RowsRejected", "TrainingJobsFailed", "ConsecutivePromotionRejections",
                    "Predictions", "LowConfidencePredictions", "FeedbackDisagreement", "FileTransientFailures",
                    "OutOfScopePredictions", "ReviewQueueWriteFailures", "ReviewQueueOldestItemAge",
                    "ReviewQueueReadFailures"}


@pytest.mark.parametrize("stage", STAGES)
def test_transient_batch_failures_alarm_on_the_first_one(synthesized, stage):
    (alarm,) = [r["Properties"] for r in synthesized.resources(stage, "AWS::CloudWatch::Alarm").values()
                if r["Properties"]["AlarmName"] == f"categorizer-{stage}-FileTransientFailures"]
    # The name the batch handler emits (functions/categorizer/handlers/batch.py), summed per 5 minutes, > 0.
    assert alarm["MetricName"] == config.MetricName.FILE_TRANSIENT_FAILURES == "FileTransientFailures"
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == (config.METRICS_NAMESPACE, "Sum", 300)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)
    assert "DLQ" in alarm["AlarmDescription"] and "file job failed" in alarm["AlarmDescription"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_review_queue_is_measured_on_its_schedule_and_its_oldest_item_is_alarmed(synthesized, stage):
    settings = config.load_stage(stage)
    resources = synthesized.templates[stage]["Resources"]
    function = logical_id(resources, "ReviewQueueMetricsFunction", "AWS::Lambda::Function")
    (rule,) = [r["Properties"] for r in synthesized.resources(stage, "AWS::Events::Rule").values()
               if r["Properties"].get("Name") == f"categorizer-{stage}-review-queue-metrics"]
    assert rule["ScheduleExpression"] == settings.review_metrics_schedule and rule["State"] == "ENABLED"
    assert [render(t["Arn"]) for t in rule["Targets"]] == [f"{function}.Arn"]
    props = resources[function]["Properties"]
    assert props["Handler"] == "categorizer.handlers.review_queue_metrics.handler"
    assert props["Environment"]["Variables"]["REVIEW_TABLE"] == f"categorizer-{stage}-review"
    (alarm,) = [r["Properties"] for r in synthesized.resources(stage, "AWS::CloudWatch::Alarm").values()
                if r["Properties"]["AlarmName"] == f"categorizer-{stage}-ReviewQueueOldestItemAge"]
    # The name the handler emits, its worst value per 5 minutes, over the stage's hours (in seconds).
    assert alarm["MetricName"] == config.MetricName.REVIEW_QUEUE_OLDEST_ITEM_AGE == "ReviewQueueOldestItemAge"
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == (config.METRICS_NAMESPACE, "Maximum", 300)
    assert alarm["Threshold"] == settings.alarms.review_oldest_item_alarm_hours * 3600
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "docs/deploy.md" in alarm["AlarmDescription"] and "reviewers" in alarm["AlarmDescription"]
    (dashboard,) = synthesized.resources(stage, "AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    assert "Review queue: open items and oldest open item (hours)" in body
    assert '"ReviewQueueDepth"' in body and '"ReviewQueueOldestItemAge"' in body


@pytest.mark.parametrize("stage", STAGES)
def test_alarm_topic_key_lets_cloudwatch_publish_and_rotates(synthesized, stage):
    (key,) = synthesized.resources(stage, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
               and set(s["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"} for s in statements)


@pytest.mark.parametrize("stage", STAGES)
def test_dashboard_covers_api_functions_batch_quality_and_learning_loop(synthesized, stage):
    (dashboard,) = synthesized.resources(stage, "AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    for title in ("API requests and errors", "API latency p50 / p99", "Invocations", "Errors", "Throttles",
                  "Duration p99", "Concurrent executions", "dead letters", "Batch rows", "Batch files",
                  "Batch deliveries", "low-confidence share", "disagreement rate",
                  "Training jobs and promotions"):
        assert title in body, title
    charted = {m for m in config.MetricName if f'"{m.value}"' in body}
    alarmed = {render(a["Properties"].get("MetricName", "")) for a in synthesized.resources(
        stage, "AWS::CloudWatch::Alarm").values()}
    assert set(config.MetricName) - charted - alarmed == set()  # every emitted metric is watched somewhere


@pytest.mark.parametrize("stage", STAGES)
def test_outputs_use_the_shared_output_keys(synthesized, stage):
    outputs = synthesized.templates[stage]["Outputs"]
    # RestApi adds its own endpoint output (the same URL as ApiUrl).
    assert set(outputs) - {logical_id(outputs, "ApiEndpoint")} == {key.value for key in config.OutputKey}


# --- What only a real account would show (docs/deploy.md, "Findings") -------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_alarm_topic_lets_this_stacks_alarms_publish_and_nothing_else(synthesized, stage):
    """enforce_ssl replaces SNS's default topic policy: without an explicit allow, no alarm ever arrives."""
    resources = synthesized.templates[stage]["Resources"]
    topic = logical_id(resources, "MonitoringAlarmTopic", "AWS::SNS::Topic")
    (policy,) = [r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic} in r["Properties"]["Topics"]]
    statements = policy["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == {"Ref": topic}
    assert render(allow["Condition"]["StringEquals"]["aws:SourceAccount"]) == "AWS::AccountId"
    assert render(allow["Condition"]["ArnLike"]["aws:SourceArn"]) == \
        f"arn:AWS::Partition:cloudwatch:AWS::Region:AWS::AccountId:alarm:categorizer-{stage}-*"
    # Every alarm matches that ARN pattern and notifies this topic.
    for alarm in synthesized.resources(stage, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmName"].startswith(f"categorizer-{stage}-")
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]
    # The TLS-only deny is still there.
    assert any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
               for s in statements)


@pytest.mark.parametrize("stage", STAGES)
def test_the_champion_pointer_is_not_cloudformations_to_reset(synthesized, stage):
    """A CloudFormation-owned parameter is rewritten to its template value by unrelated changes (tags,
    description): the stack only grants access to its name; the publish step and promotions write it."""
    template = synthesized.templates[stage]
    assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"]
    assert render(template["Outputs"]["ChampionParameter"]["Value"]) == f"/categorizer/{stage}/champion"


def test_retained_data_survives_deletion_but_not_a_failed_first_create(synthesized):
    """Plain Retain keeps what a failed first create made, and the retry then fails on "already exists"."""
    retained = {k: r for k, r in synthesized.templates["prod"]["Resources"].items()
                if r.get("DeletionPolicy", "Delete") != "Delete"}
    kinds = {r["Type"] for r in retained.values()}
    assert {"AWS::S3::Bucket", "AWS::DynamoDB::GlobalTable", "AWS::Cognito::UserPool", "AWS::Logs::LogGroup"} <= kinds
    # API Gateway's account-wide CloudWatch role and setting: no name that a retry could clash with.
    account_wide = {"AWS::IAM::Role", "AWS::ApiGateway::Account"}
    plain = {k for k, r in retained.items() if r["DeletionPolicy"] != "RetainExceptOnCreate"
             and r["Type"] not in account_wide}
    assert plain == set()
    assert all(r["UpdateReplacePolicy"] == "Retain" for r in retained.values())


def test_dev_buckets_empty_themselves_on_destroy_and_prod_buckets_never(synthesized):
    def emptied(stage: str) -> int:
        return len(synthesized.resources(stage, "Custom::S3AutoDeleteObjects"))

    assert (emptied("dev"), emptied("prod")) == (4, 0)


def test_the_prod_waf_rate_limit_is_the_stage_setting_and_at_least_10000(synthesized):
    (acl,) = synthesized.resources("prod", "AWS::WAFv2::WebACL").values()
    (rate,) = [r for r in acl["Properties"]["Rules"] if "RateBasedStatement" in r["Statement"]]
    limit = rate["Statement"]["RateBasedStatement"]["Limit"]
    assert limit == config.load_stage("prod").waf_rate_limit_per_5min >= 10_000


def test_free_text_bodies_are_counted_not_blocked_by_the_common_rule_sets_body_rules(synthesized):
    """People write "<b>", "../" and URLs in what they classify: on those routes the XSS and file-inclusion body
    rules count; everywhere else they block."""
    from infra.components.api import FREE_TEXT_BODY_RULES

    (acl,) = synthesized.resources("prod", "AWS::WAFv2::WebACL").values()
    common = [r for r in acl["Properties"]["Rules"]
              if r["Statement"].get("ManagedRuleGroupStatement", {}).get("Name") == "AWSManagedRulesCommonRuleSet"]
    assert len(common) == 2

    def paths(statement: dict) -> set[str]:
        inner = statement.get("OrStatement", {}).get("Statements", [statement])
        return {s["ByteMatchStatement"]["SearchString"] for s in inner}

    def counted(rule: dict) -> set[str]:
        return {o["Name"] for o in rule["Statement"]["ManagedRuleGroupStatement"].get("RuleActionOverrides", [])
                if "Count" in o["ActionToUse"]}

    everywhere, free_text = sorted(common, key=lambda r: "NotStatement" in str(r), reverse=True)
    scope = everywhere["Statement"]["ManagedRuleGroupStatement"]["ScopeDownStatement"]["NotStatement"]["Statement"]
    assert paths(scope) == {"/v1/classify", "/v1/feedback"}
    assert counted(everywhere) == {"SizeRestrictions_BODY"}
    assert paths(free_text["Statement"]["ManagedRuleGroupStatement"]["ScopeDownStatement"]) == {
        "/v1/classify", "/v1/feedback"}
    assert counted(free_text) == {"SizeRestrictions_BODY", *FREE_TEXT_BODY_RULES}


@pytest.mark.parametrize("stage", STAGES)
def test_gateway_errors_render_as_json_with_a_real_validation_message(synthesized, stage):
    """API Gateway substitutes $context variables verbatim: the message must be its pre-quoted form."""
    import json

    message = 'Invalid request body: [object has missing required properties (["text"])]'
    responses = synthesized.resources(stage, "AWS::ApiGateway::GatewayResponse").values()
    assert responses
    for response in responses:
        template = response["Properties"]["ResponseTemplates"]["application/json"]
        rendered = template.replace("$context.error.messageString", json.dumps(message))
        assert "$context" not in rendered, template
        body = json.loads(rendered)
        assert set(body["error"]) == {"code", "message", "details"}
        if response["Properties"]["ResponseType"] == "BAD_REQUEST_BODY":
            assert body["error"]["message"] == message and response["Properties"]["StatusCode"] == "422"


def test_skip_bundling_is_refused_for_a_deploy_and_allowed_for_synth(tmp_path):
    from infra.app import BUNDLING_STACKS_KEY, build, new_app

    deploy = new_app(outdir=str(tmp_path / "deploy"), skip_bundling="true", stage="dev",
                     **{BUNDLING_STACKS_KEY: ["Categorizer-dev"]})  # what `cdk deploy Categorizer-dev` passes
    with pytest.raises(ValueError, match="skip_bundling is for `cdk synth` and the tests only"):
        build(deploy)
    synth = new_app(outdir=str(tmp_path / "synth"), skip_bundling="true", stage="dev",
                    **{BUNDLING_STACKS_KEY: ["**"]})  # `cdk synth`
    assert set(build(synth)) == {"dev"}


def _stack_in(region: str, tmp_path):
    import aws_cdk as cdk

    from infra.app import BUNDLING_STACKS_KEY, new_app
    from infra.stack import CategorizerStack

    app = new_app(outdir=str(tmp_path / region), **{BUNDLING_STACKS_KEY: []})
    return CategorizerStack(app, f"Categorizer-dev-{region}", stage=config.load_stage("dev"),
                            env=cdk.Environment(account="123456789012", region=region))


def test_a_stack_whose_region_is_known_gets_that_regions_training_image(tmp_path):
    from aws_cdk.assertions import Template

    template = Template.from_stack(_stack_in("eu-central-2", tmp_path)).to_json()
    (start,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
                and r["Properties"].get("FunctionName") == "categorizer-dev-start-training"]
    image = start["Properties"]["Environment"]["Variables"]["TRAINING_IMAGE_URI"]
    assert image.startswith("380420809688.dkr.ecr.eu-central-2.amazonaws.com/pytorch-training:")


def test_a_region_without_a_training_image_fails_the_synth_not_the_deploy(tmp_path):
    with pytest.raises(config.UnsupportedRegionError, match="no AWS Deep Learning Containers training image"):
        _stack_in("cn-north-1", tmp_path)


@pytest.mark.parametrize("stage", STAGES)
def test_an_environment_agnostic_stack_maps_every_image_region(synthesized, stage):
    mappings = synthesized.templates[stage]["Mappings"]
    (registry,) = [m for name, m in mappings.items() if name.startswith("TrainingDlcRegistry")]
    assert {region: v["account"] for region, v in registry.items()} == config.DLC_REGISTRY_ACCOUNTS
    assert {"eu-central-2", "eu-south-2", "il-central-1", "ca-west-1", "ap-southeast-4", "ap-southeast-5",
            "mx-central-1"} <= set(registry)
