"""Cognito: the user pool, its OAuth resource server and scopes, groups for people, and two app clients.

- Machines use the client-credentials app client (with a secret) and get access tokens carrying the
  `categorizer/classify` and/or `categorizer/feedback` scopes from the pool domain's /oauth2/token.
- People use the user/password app client (USER_PASSWORD_AUTH or SRP). Their access tokens carry no custom
  scopes, so their permissions come from the `classify` and `feedback` groups (`cognito:groups` claim).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra import config
from infra.components.nag import acknowledge


class Identity(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: config.ResourceNames,
                 retain: bool, threat_protection: bool) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self, "UserPool",
            user_pool_name=names.user_pool,
            self_sign_up_enabled=False,  # operators create people (docs/deploy.md)
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=config.USER_POOL.password_min_length, require_lowercase=True, require_uppercase=True,
                require_digits=True, require_symbols=True, temp_password_validity=cdk.Duration.days(3),
                password_history_size=5 if threat_protection else None,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            feature_plan=cognito.FeaturePlan.PLUS if threat_protection else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=(cognito.StandardThreatProtectionMode.FULL_FUNCTION
                                             if threat_protection else None),
            # As the table: retained on delete, removed when a first create rolls back (docs/deploy.md).
            removal_policy=cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain else cdk.RemovalPolicy.DESTROY,
        )
        acknowledge(self.user_pool, "AwsSolutions-COG2",
                    "MFA is optional (TOTP): people sign in from the CLI with USER_PASSWORD_AUTH; machines "
                    "use client credentials, to which MFA does not apply.")
        if not threat_protection:
            for rule in ("AwsSolutions-COG8",):
                acknowledge(self.user_pool, rule, "Threat protection (Plus feature plan) is enabled in prod only "
                                                  "(stage config cognito_threat_protection); dev has no real users.")

        scopes = [cognito.ResourceServerScope(scope_name=name, scope_description=description)
                  for name, description in config.USER_POOL.scopes]
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer", identifier=config.RESOURCE_SERVER_ID, user_pool_resource_server_name="categorizer",
            scopes=scopes,
        )
        # The hosted domain serves /oauth2/token for the client-credentials flow.
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=names.user_pool_domain_prefix))

        for group, description in config.USER_POOL.groups:
            cognito.CfnUserPoolGroup(self, f"Group-{group}", user_pool_id=self.user_pool.user_pool_id,
                                     group_name=group, description=description)

        self.machine_client = self.user_pool.add_client(
            "MachineClient",
            user_pool_client_name=names.machine_client,
            generate_secret=True,
            auth_flows=cognito.AuthFlow(),  # no user flows: OAuth client credentials only
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[cognito.OAuthScope.resource_server(self.resource_server, scope) for scope in scopes
                        if f"{config.RESOURCE_SERVER_ID}/{scope.scope_name}" in config.USER_POOL.machine_oauth_scopes],
            ),
            access_token_validity=cdk.Duration.hours(1),
            enable_token_revocation=True,
            prevent_user_existence_errors=True,
        )
        self.user_client = self.user_pool.add_client(
            "UserClient",
            user_pool_client_name=names.user_client,
            generate_secret=False,  # a CLI cannot keep a secret
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            disable_o_auth=True,
            access_token_validity=cdk.Duration.hours(1),
            id_token_validity=cdk.Duration.hours(1),
            refresh_token_validity=cdk.Duration.days(30),
            enable_token_revocation=True,
            prevent_user_existence_errors=True,
        )

    @property
    def client_ids(self) -> tuple[str, ...]:
        return (self.machine_client.user_pool_client_id, self.user_client.user_pool_client_id)

    @property
    def token_url(self) -> str:
        return f"{self.domain.base_url()}/oauth2/token"
