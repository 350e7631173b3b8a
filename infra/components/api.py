"""The REST API in front of the API function.

Lambda proxy integration on explicit routes; a Cognito authorizer on every route but `GET /v1/health` and the
web console's page and static files, with the route's OAuth scopes (or, for people, the user-token scope: the
app then checks their groups); request validation; stage throttling and a usage plan; JSON access logs; X-Ray;
gateway errors in the app's error shape (`{"error": {"code", "message", "details"}}`); a WAF web ACL when the
stage asks for one.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from categorizer.api.routes import gateway_routes
from infra import config
from infra.components.nag import acknowledge

HEALTH_PATH = "/v1/health"


CONSOLE_PATH = "/console"
# Response types API Gateway passes to the client as bytes (the app base64-encodes them; Mangum sets
# isBase64Encoded): the console's report plots. API Gateway decodes only when the request's first Accept type
# matches one of these.
BINARY_MEDIA_TYPES = ("image/png",)


_CONSOLE_PUBLIC = ("The web console's page, static files and sign-in config (pool and client ids, which are not "
                   "secrets) must load before anyone has a token; they carry no data. Every /v1 call the page "
                   "makes needs a token.")
# The routes come from the app (categorizer.api.routes); a public one must say why here, or synth fails.
PUBLIC_BECAUSE = {
    HEALTH_PATH: "The health check is public on purpose (load balancers, uptime probes); it returns only status "
                 "and the model version.",
    CONSOLE_PATH: _CONSOLE_PUBLIC,
    f"{CONSOLE_PATH}/{{asset}}": _CONSOLE_PUBLIC,
}
_SIMPLE_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def coarse_model(schema: dict) -> apigw.JsonSchema:
    """API Gateway's check of a request body, from the app's own schema: the object, its required fields and
    each field's JSON type where it has one. The app gives the precise 413/422 answers (limits, labels)."""
    properties = {name: apigw.JsonSchema(type=_json_type(prop["type"])) if prop.get("type") in _SIMPLE_TYPES
                  else apigw.JsonSchema() for name, prop in schema.get("properties", {}).items()}
    return apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT,
                            required=schema.get("required") or None, properties=properties)


# `$context.error.messageString` is the message already quoted as a JSON string by API Gateway; the raw
# `$context.error.message` and `validationErrorString` hold quotes of their own and would break the JSON.
GATEWAY_MESSAGE = "$context.error.messageString"


def error_template(code: str, message: str | None = None) -> str:
    """The app's error shape; `message` None: API Gateway's own (quoted) message, else a fixed text."""
    quoted = GATEWAY_MESSAGE if message is None else json.dumps(message)
    return '{"error": {"code": %s, "message": %s, "details": null}}' % (json.dumps(code), quoted)  # noqa: UP031


# Gateway-generated answers in the app's error shape. 400 body-validation errors become 422 like the app's.
GATEWAY_RESPONSES = (
    (apigw.ResponseType.UNAUTHORIZED, "401", "unauthorized", None),
    (apigw.ResponseType.ACCESS_DENIED, "403", "forbidden", None),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "not_found", "no such route"),
    (apigw.ResponseType.BAD_REQUEST_BODY, "422", "invalid_request", None),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "payload_too_large", None),
    (apigw.ResponseType.THROTTLED, "429", "throttled", None),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "quota_exceeded", None),
    (apigw.ResponseType.DEFAULT_4_XX, None, "bad_request", None),
    (apigw.ResponseType.DEFAULT_5_XX, None, "upstream_error", None),
)


class ClassificationApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction,
                 user_pool: cognito.IUserPool, stage: config.StageConfig, names: config.ResourceNames,
                 removal_policy: cdk.RemovalPolicy, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", log_group_name=f"/aws/apigateway/{names.api}/access",
            retention=log_retention, removal_policy=removal_policy,
        )
        self.api = apigw.RestApi(
            self, "Api",
            rest_api_name=names.api,
            description="categorizer: classify text, send feedback, web console",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=list(BINARY_MEDIA_TYPES),
            cloud_watch_role=True,  # needed once per account/region for execution logs
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=stage.name,
                throttling_rate_limit=stage.api_throttle_rate,
                throttling_burst_limit=stage.api_throttle_burst,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # never log request bodies (texts may be personal data)
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
            ),
        )
        for response_type, status, code, message in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                f"Gateway{response_type.response_type}", type=response_type, status_code=status,
                templates={"application/json": error_template(code, message)},
                response_headers=({"WWW-Authenticate": "'Bearer realm=\"categorizer\"'"}
                                  if code == "unauthorized" else None),
            )

        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self, "Authorizer", cognito_user_pools=[user_pool], authorizer_name=f"{names.api}-cognito",
            results_cache_ttl=cdk.Duration.minutes(5),
        )
        self.body_validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True)
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        self.methods: dict[str, apigw.Method] = {}
        self.routes = gateway_routes()
        for route in self.routes:
            resource = self.api.root.resource_for_path(route.path)
            protected = bool(route.scopes)
            model = None
            if route.body_schema is not None:
                name = route.body_schema["title"]
                model = self.api.add_model(name, content_type="application/json", model_name=name,
                                           schema=coarse_model(route.body_schema))
            method = resource.add_method(
                route.method, integration,
                authorizer=self.authorizer if protected else None,
                authorization_type=apigw.AuthorizationType.COGNITO if protected else apigw.AuthorizationType.NONE,
                # People's access tokens carry the user-token scope; the app then checks their groups.
                authorization_scopes=[*route.scopes, config.USER_TOKEN_SCOPE] if protected else None,
                api_key_required=stage.require_api_key and protected,
                request_validator=self.body_validator if model else None,
                request_models={"application/json": model} if model else None,
            )
            self.methods[f"{route.method} {route.path}"] = method
            if not protected:
                if route.path not in PUBLIC_BECAUSE:
                    raise ValueError(f"{route.method} {route.path} is public: say why in PUBLIC_BECAUSE")
                for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                    acknowledge(method, rule, PUBLIC_BECAUSE[route.path])

        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan", name=f"{names.api}-default",
            description="Default throttle and quota for API keys issued to partners",
            throttle=apigw.ThrottleSettings(rate_limit=stage.api_throttle_rate,
                                            burst_limit=stage.api_throttle_burst),
            quota=apigw.QuotaSettings(limit=stage.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )

        cloud_watch_role = self.api.node.find_child("CloudWatchRole")
        acknowledge(cloud_watch_role,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AmazonAPIGatewayPushToCloudWatchLogs]",
                    "The account-level role API Gateway uses to write execution logs; AWS's own policy for it.")

        self.web_acl = self._web_acl(names, stage) if stage.waf_enabled else None
        if self.web_acl is None:
            acknowledge(self.api.deployment_stage, "AwsSolutions-APIG3",
                        "WAF is enabled in prod only (stage config waf_enabled); dev is throttled and "
                        "authenticated.")

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def origin(self) -> str:
        """The browser origin of the stage URL (`https://<api id>.execute-api.<region>.<suffix>`): the console's."""
        stack = cdk.Stack.of(self)
        return f"https://{self.api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}"

    def _web_acl(self, names: config.ResourceNames, stage: config.StageConfig) -> wafv2.CfnWebACL:
        def managed(name: str, priority: int, excluded: tuple[str, ...] = (), *,
                    scope_down: wafv2.CfnWebACL.StatementProperty | None = None,
                    rule_group: str | None = None) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name, priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=rule_group or name, scope_down_statement=scope_down,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}))
                            for rule in excluded
                        ] or None,
                    )),
                visibility_config=_visibility(name),
            )

        free_text = free_text_paths(self.routes)
        acl = wafv2.CfnWebACL(
            self, "WebAcl",
            name=f"{names.api}-acl", scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(f"{names.api}-acl"),
            rules=[
                # Bodies are up to 256 texts x 10,000 characters: the 8 KB body rule would block them anywhere.
                # On the routes whose bodies are people's free text (classify, feedback, review decisions), the
                # XSS and file-inclusion body rules would block ordinary messages ("<b>", "../", "http://"):
                # they count there; the app never renders or opens what it classifies.
                managed("AWSManagedRulesCommonRuleSet", 0, excluded=("SizeRestrictions_BODY",),
                        scope_down=_not(_path_in(free_text))),
                managed("AWSManagedRulesCommonRuleSet-FreeText", 1, excluded=("SizeRestrictions_BODY",
                                                                              *FREE_TEXT_BODY_RULES),
                        scope_down=_path_in(free_text), rule_group="AWSManagedRulesCommonRuleSet"),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
                managed("AWSManagedRulesAmazonIpReputationList", 3),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp", priority=4,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=stage.waf_rate_limit_per_5min, aggregate_key_type="IP")),
                    visibility_config=_visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", resource_arn=self.api.deployment_stage.stage_arn,
                                   web_acl_arn=acl.attr_arn)
        return acl


# The common rule set's body rules that fire on ordinary free text (AWS's rule names).
FREE_TEXT_BODY_RULES = ("CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY")


def free_text_paths(routes) -> tuple[str, ...]:
    """The routes whose JSON bodies carry people's text (a `text` or `texts` field): derived from the app, so a
    new route with such a body (the review decisions, say) is covered without an edit here."""
    return tuple(sorted({r.path for r in routes if r.body_schema is not None
                         and {"text", "texts"} & set(r.body_schema.get("properties", {}))}))


def _path_in(paths: tuple[str, ...]) -> wafv2.CfnWebACL.StatementProperty:
    """The request's path (with the stage prefix, as WAF sees it) ends with one of `paths`."""
    matches = [wafv2.CfnWebACL.StatementProperty(byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}), positional_constraint="ENDS_WITH",
        search_string=path, text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(
            priority=0, type="NONE")])) for path in paths]
    if len(matches) == 1:
        return matches[0]
    return wafv2.CfnWebACL.StatementProperty(or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=matches))


def _not(statement: wafv2.CfnWebACL.StatementProperty) -> wafv2.CfnWebACL.StatementProperty:
    return wafv2.CfnWebACL.StatementProperty(not_statement=wafv2.CfnWebACL.NotStatementProperty(
        statement=statement))


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name.replace("-", ""), sampled_requests_enabled=True)


def _json_type(name: str) -> apigw.JsonSchemaType:
    return {"object": apigw.JsonSchemaType.OBJECT, "array": apigw.JsonSchemaType.ARRAY,
            "string": apigw.JsonSchemaType.STRING, "integer": apigw.JsonSchemaType.INTEGER,
            "boolean": apigw.JsonSchemaType.BOOLEAN, "number": apigw.JsonSchemaType.NUMBER}[name]
