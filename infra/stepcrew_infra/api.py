"""The HTTP API (API Gateway v2) in front of the ``api`` function.

Routes (:data:`constants.API_ROUTES`), all with the Lambda proxy integration, payload format 2.0:
``POST /runs``, ``GET /runs``, ``GET /runs/{id}``, ``GET /runs/{id}/events``, ``POST /runs/{id}/approval``,
``POST /runs/{id}/review`` and ``POST /datasets`` behind a JWT authorizer, and ``GET /health`` without one. HTTP API integrations time out after 30 s (API Gateway quotas
page), which is why ``POST /runs`` only starts the run state machine and returns 202.

Authorizer: a JWT authorizer on the ``Authorization`` header. Issuer and audience come from context
(``jwt_issuer``, ``jwt_audience``); without them the stack creates a Cognito user pool and an app client and uses
the pool as issuer and the client id as audience (API Gateway checks ``aud`` or, for access tokens,
``client_id``). Users of that pool carry their tenant in the immutable attribute ``custom:tenant``
(:data:`TENANT_CLAIM`, in ID tokens), set by an administrator at creation.

The default stage throttles every route (:data:`constants.API_THROTTLE_RATE_RPS` requests per second, burst
:data:`constants.API_THROTTLE_BURST`) and writes JSON access logs to its own log group.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from stepcrew import wiring
from stepcrew.api.auth import DEFAULT_TENANT_CLAIM
from stepcrew.tools.datasets import UPLOAD_FOLDER

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.functions import FunctionResources, StepcrewFunction
from stepcrew_infra.nag import acknowledge

#: The claim the api function reads the tenant from (the Cognito pool's ``tenant`` custom attribute).
TENANT_CLAIM = DEFAULT_TENANT_CLAIM
#: One JSON object per request ($context variables of HTTP APIs; API Gateway "Customizing HTTP API access logs").
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp", "time": "$context.requestTime",
    "method": "$context.httpMethod", "routeKey": "$context.routeKey", "path": "$context.path",
    "status": "$context.status", "protocol": "$context.protocol", "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency", "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage", "authorizerError": "$context.authorizer.error",
    "principal": "$context.authorizer.claims.sub",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    """The access-log settings of an :class:`apigw.HttpStage` (a jsii interface, implemented here)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)
        self._format = apigw_v1.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return self._format


class Api(Construct):
    """``handler`` (the api :class:`StepcrewFunction`), ``http_api``, ``stage``, ``authorizer``, ``user_pool``
    (None when an external issuer is configured)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, resources: FunctionResources,
                 run_state_machine: sfn.StateMachine) -> None:
        super().__init__(scope, construct_id)
        self.handler = StepcrewFunction(
            self, "Handler", spec=wiring.FUNCTIONS[C.API_FUNCTION], resources=resources,
            environment={"STEPCREW_RUN_STATE_MACHINE_ARN": run_state_machine.state_machine_arn,
                         "STEPCREW_TENANT_CLAIM": TENANT_CLAIM,
                         # s3:// datasets must be s3://<this bucket>/<tenant>/... (checked here and in the tools)
                         "STEPCREW_DATA_BUCKET": resources.datasets.bucket_name})
        self.handler.role.add_to_policy(iam.PolicyStatement(
            sid="StartRuns", actions=["states:StartExecution"], resources=[run_state_machine.state_machine_arn]))
        self.handler.role.add_to_policy(iam.PolicyStatement(
            sid="ResumeApprovals", actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
            resources=[run_state_machine.state_machine_arn]))
        # POST /datasets answers a presigned PUT signed with this role's credentials: S3 authorizes the upload as
        # this role, so it may write upload keys (<tenant>/uploads/<name>, built server-side from the JWT's tenant)
        # and nothing else. It reads no dataset.
        datasets = resources.datasets
        self.handler.role.add_to_policy(iam.PolicyStatement(
            sid="PresignDatasetUploads", actions=["s3:PutObject"],
            resources=[datasets.arn_for_objects(f"*/{UPLOAD_FOLDER}/*")]))
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(datasets.node.default_child))
        acknowledge(self.handler.role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*/{UPLOAD_FOLDER}/*]",
                    "api: signs upload URLs for any tenant (one multi-tenant function); the key is built from the "
                    "token's tenant and a validated name, and only upload keys may be written (no read, no delete).")

        self.user_pool: cognito.UserPool | None = None
        if config.jwt_issuer:
            issuer, audience = config.jwt_issuer, list(config.jwt_audience)
        else:
            issuer, audience = self._cognito(config)
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer", issuer, jwt_audience=audience, authorizer_name="jwt",
            identity_source=["$request.header.Authorization"])

        self.http_api = apigw.HttpApi(
            self, "HttpApi", api_name=config.resource_name("api"), create_default_stage=False,
            default_authorizer=self.authorizer, description=f"stepcrew {config.stage}: runs API")
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=config.log_retention,
                                         removal_policy=config.removal_policy)
        self.stage = apigw.HttpStage(
            self, "DefaultStage", http_api=self.http_api, stage_name="$default", auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=C.API_THROTTLE_RATE_RPS, burst_limit=C.API_THROTTLE_BURST),
            access_log_settings=_AccessLogSettings(self.access_logs))
        # per-route throttles (the L2 stage has only the stage-wide default): CfnStage.RouteSettings
        self.stage.node.default_child.add_property_override("RouteSettings", {
            key: {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}
            for key, (rate, burst) in sorted(C.API_ROUTE_THROTTLES.items())})

        integration = integrations.HttpLambdaIntegration(
            "ApiIntegration", self.handler.function, payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0)
        for method, path, authorized in C.API_ROUTES:
            routes = self.http_api.add_routes(
                path=path, methods=[apigw.HttpMethod(method)], integration=integration,
                authorizer=None if authorized else apigw.HttpNoneAuthorizer())
            if not authorized:
                for route in routes:
                    acknowledge(route, "AwsSolutions-APIG4",
                                f"{method} {path} is the unauthenticated liveness probe: it returns a constant "
                                "status, reads no run data and starts nothing.")

        CfnOutput(self, "ApiUrl", value=self.stage.url, description="Base URL of the stepcrew HTTP API")
        CfnOutput(self, "JwtIssuer", value=issuer, description="Issuer the JWT authorizer accepts")

    def _cognito(self, config: StageConfig) -> tuple[str, list[str]]:
        """A user pool (admin-created users only, TOTP MFA required) and an app client (SRP auth, no secret)."""
        pool = cognito.UserPool(
            self, "UserPool", user_pool_name=config.resource_name("users"), self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True), auto_verify=cognito.AutoVerifiedAttrs(email=True),
            password_policy=cognito.PasswordPolicy(min_length=12, require_lowercase=True, require_uppercase=True,
                                                   require_digits=True, require_symbols=True,
                                                   temp_password_validity=Duration.days(3)),
            mfa=cognito.Mfa.REQUIRED, mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            custom_attributes={"tenant": cognito.StringAttribute(min_len=1, max_len=128, mutable=False)},
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=config.is_prod, removal_policy=config.removal_policy,
        )
        acknowledge(pool, "AwsSolutions-COG8",
                    "The Plus feature plan (threat protection) is billed per monthly active user; this pool holds a "
                    "few admin-created API users, self sign-up is off and TOTP MFA is required. Use jwt_issuer for "
                    "an existing identity provider instead.")
        client = pool.add_client(
            "ApiClient", user_pool_client_name=config.resource_name("api-client"), generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True), prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1), access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            read_attributes=cognito.ClientAttributes().with_standard_attributes(email=True)
            .with_custom_attributes("tenant"),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True))
        self.user_pool = pool
        CfnOutput(self, "UserPoolId", value=pool.user_pool_id, description="Cognito user pool of the API")
        CfnOutput(self, "UserPoolClientId", value=client.user_pool_client_id, description="App client (audience)")
        return pool.user_pool_provider_url, [client.user_pool_client_id]
