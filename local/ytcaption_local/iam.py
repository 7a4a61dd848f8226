"""IAM enforced in the local runtime, with the roles of ``template.yaml``.

On AWS every Lambda, the Batch worker and the state machine call AWS with the
credentials of their own role, and a permission missing from the template is an
``AccessDenied`` in production. moto answers every call by default; here:

- each role of the transformed template gets its policies (inline and SAM policy
  templates, resolved like the rest of the stack) and STS credentials of its own;
- a function invocation, a Batch job and every thread they start sign their calls
  with their role's credentials (a botocore credential provider reading a context
  variable), Step Functions' service calls with the state machine's role;
- moto checks the signature and the role's policies on every call
  (``INITIAL_NO_AUTH_ACTION_COUNT`` = 0). moto 5.2.5 compares resources only for
  S3, SQS, IAM and STS; this module tells it the resource of the DynamoDB, Step
  Functions, Lambda, Batch and EventBridge calls the stack makes (and the source
  of an S3 copy), and answers JSON services' denials as ``AccessDeniedException``.

Code outside any function or job (the runtime deploying the stack, tests looking
at it) acts as an administrator user, like an operator with the AWS CLI.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

from ytcaption_local.environments import inherit_in_threads

REGION = "us-east-1"
ACCOUNT = "123456789012"
_ADMIN = "ytcaption-local-admin"
_JSON_SERVICES = {"dynamodb", "states", "events", "lambda", "batch", "sqs", "secretsmanager"}
#: moto recomputes these services' signatures over another canonical request and
#: refuses valid ones (SignatureDoesNotMatch on API Gateway's GET /apikeys): the
#: caller is still known by its access key and every policy check still applies.
_SIGNATURE_UNCHECKED = frozenset({"apigateway"})
#: Operation names whose IAM action has another name.
_IAM_ACTIONS = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction",
                # no such IAM action: AWS authorizes HeadBucket as s3:ListBucket
                ("s3", "HeadBucket"): "ListBucket"}


@dataclass(frozen=True)
class Principal:
    name: str
    access_key: str
    secret_key: str
    token: str | None = None


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("ytcaption_iam_principal",
                                                                             default=None)


class IamEnforcer:
    """Roles, credentials and the checks; ``install`` after the stack is deployed."""

    def __init__(self) -> None:
        self.admin: Principal | None = None
        #: role name -> its credentials
        self.roles: dict[str, Principal] = {}
        #: function logical id -> role name; and the state machine's and Batch job's roles
        self.function_roles: dict[str, str] = {}
        self.state_machine_role = ""
        self.batch_job_role = ""
        #: role name -> policy name -> document, as deployed (tests remove permissions from it)
        self.policies: dict[str, dict[str, dict[str, Any]]] = {}
        self._undo: list[Callable[[], None]] = []
        self._client: Callable[..., Any] | None = None
        self._admin_iam: Any = None
        #: Names replaced in policy documents (a test stack's bucket for the stack's).
        self.aliases: dict[str, str] = {}
        #: A function's code directory -> its logical id (tests run handlers as their role).
        self.code_dirs: dict[Any, str] = {}

    # --- set-up -----------------------------------------------------------------------------------

    def install(self, client: Callable[..., Any], res: dict[str, Any], resolve: Callable[[Any], Any],
                deployed: bool = False) -> None:
        """Give every template role its policies and credentials, then enforce. ``deployed``:
        the roles' inline policies are already on them (CloudFormation put them there), else
        they are resolved from the template and put here."""
        iam, sts = client("iam"), client("sts")
        self._client = client
        try:
            iam.create_user(UserName=_ADMIN)
        except iam.exceptions.EntityAlreadyExistsException:  # a stack restored from saved state
            for old in iam.list_access_keys(UserName=_ADMIN)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=_ADMIN, AccessKeyId=old["AccessKeyId"])
        iam.put_user_policy(UserName=_ADMIN, PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName=_ADMIN)["AccessKey"]
        self.admin = Principal(_ADMIN, key["AccessKeyId"], key["SecretAccessKey"])
        for lid, r in res.items():
            if r["Type"] != "AWS::IAM::Role":
                continue
            name = _role_name(resolve({"Fn::GetAtt": [lid, "Arn"]}))
            if deployed:
                policies = [(p, iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
                            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
            else:
                policies = [(p["PolicyName"], p["PolicyDocument"])
                            for p in resolve(r["Properties"]).get("Policies", [])]
            for policy_name, document in policies:
                if isinstance(document, str):
                    try:
                        document = json.loads(document)
                    except ValueError:  # moto's CloudFormation stores a dict's Python repr: put right below
                        document = ast.literal_eval(document)
                self._put_policy(iam, name, policy_name, document)
            # AWS managed policies (ManagedPolicyArns: logs, X-Ray, the ECS agent) are left
            # out: nothing local calls those services, and moto does not ship them all
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName=lid[:64],
                                    DurationSeconds=3600)["Credentials"]
            self.roles[name] = Principal(name, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        for lid, r in res.items():
            props = r.get("Properties", {})
            if r["Type"] == "AWS::Lambda::Function":
                self.function_roles[lid] = _role_name(resolve(props["Role"]))
            elif r["Type"] == "AWS::StepFunctions::StateMachine":
                self.state_machine_role = _role_name(resolve(props["RoleArn"]))
            elif r["Type"] == "AWS::Batch::JobDefinition":
                self.batch_job_role = _role_name(resolve(props["ContainerProperties"]["JobRoleArn"]))
        self._install_credentials()
        self._install_checks()

    def put_policy(self, role: str, name: str, document: dict[str, Any]) -> None:
        """Set one inline policy of a role (what a template change would deploy)."""
        if self._client is None:
            raise RuntimeError("IAM enforcement is not installed")
        if self._admin_iam is None:
            self._admin_iam = self._client("iam")  # built now: it signs as the caller of the moment
        with self.acting_as(self.admin):
            self._put_policy(self._admin_iam, role, name, document)

    def _put_policy(self, iam: Any, role: str, name: str, document: dict[str, Any]) -> None:
        document = {"Version": "2012-10-17", **document}  # IAM's default; moto insists on it
        text = json.dumps(document)
        for old, new in self.aliases.items():
            text = text.replace(old, new)
        self.policies.setdefault(role, {})[name] = json.loads(text)
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=text)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    # --- who is calling ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def acting_as(self, principal: Principal | None) -> Iterator[None]:
        token = _current.set(principal)
        try:
            yield
        finally:
            _current.reset(token)

    def as_function(self, logical_id: str) -> contextlib.AbstractContextManager[None]:
        if not self.roles:
            return contextlib.nullcontext()  # not enforcing
        return self.acting_as(self.roles[self.function_roles[logical_id]])

    def as_role_of(self, code_dir: Any) -> contextlib.AbstractContextManager[None]:
        """The role of the function whose code is in ``code_dir`` (none known: the caller's)."""
        from pathlib import Path

        lid = self.code_dirs.get(Path(code_dir).resolve())
        return self.as_function(lid) if lid else contextlib.nullcontext()

    def as_batch_job(self) -> contextlib.AbstractContextManager[None]:
        if not self.roles:
            return contextlib.nullcontext()
        return self.acting_as(self.roles[self.batch_job_role])

    def current(self) -> Principal:
        principal = _current.get() or self.admin
        if principal is None:
            raise RuntimeError("IAM enforcement is not installed")
        return principal

    def _install_credentials(self) -> None:
        import boto3
        import botocore.session
        from botocore.credentials import CredentialProvider, Credentials, ReadOnlyCredentials

        enforcer = self

        class ContextCredentials(Credentials):
            """Whoever is calling now: resolved per request, not per client (clients are
            cached and shared by every function of the process)."""

            def __init__(self) -> None:
                self.method = "ytcaption-local-iam"

            def get_frozen_credentials(self) -> ReadOnlyCredentials:
                p = enforcer.current()
                return ReadOnlyCredentials(p.access_key, p.secret_key, p.token)

            @property
            def access_key(self) -> str:
                return enforcer.current().access_key

            @property
            def secret_key(self) -> str:
                return enforcer.current().secret_key

            @property
            def token(self) -> str | None:
                return enforcer.current().token

        class Provider(CredentialProvider):
            METHOD = "ytcaption-local-iam"

            def load(self) -> Credentials:
                return ContextCredentials()

        session = botocore.session.get_session()
        session.get_component("credential_provider").insert_before("env", Provider())
        previous = boto3.DEFAULT_SESSION
        boto3.setup_default_session(botocore_session=session)
        self._undo.append(lambda: setattr(boto3, "DEFAULT_SESSION", previous))

        self._undo.append(inherit_principal_in_threads())

    def _sign_state_machine_client(self, client: Any, state_credentials: Any) -> None:
        """Step Functions' service integrations call with the state machine's role."""
        from botocore.credentials import Credentials

        role = _role_name(getattr(state_credentials, "role_arn", "") or "") or self.state_machine_role
        p = self.roles.get(role) or self.roles[self.state_machine_role]
        client._request_signer._credentials = Credentials(p.access_key, p.secret_key, p.token)

    def _install_checks(self) -> None:
        from ytcaption_local import motopatch

        patches = contextlib.ExitStack()
        patches.enter_context(motopatch.iam_patches(_authorize, self._sign_state_machine_client))
        self._undo.append(patches.close)


def inherit_principal_in_threads() -> Callable[[], None]:
    """Threads started inside an invocation work for it (what Python 3.14's
    ``thread_inherit_context`` does): S3 transfers, chunk uploads, shard pools. Returns the
    undo (``environments.hook_thread_start`` chains it with the other hooks on ``Thread.start``).
    """
    return inherit_in_threads(_current)


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


# --- the check moto runs on every request ------------------------------------------------------


def _authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    """moto's ``_authenticate_and_authorize_action`` with the resources moto leaves out."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError
    from moto.s3.exceptions import S3AccessDeniedError
    from werkzeug.exceptions import HTTPException

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return
    parsed = urlparse(self.uri)
    path = self.raw_path + ("?" + parsed.query if parsed.query else "")
    headers: Any = self.headers
    query = {k.lower(): v[0] for k, v in parse_qs(parsed.query).items()}
    presigned = "x-amz-credential" in query
    if presigned:
        # a presigned URL: the signer's permissions decide (its signature is not re-checked)
        headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential={query['x-amz-credential']}, "
                                    "SignedHeaders=host, Signature=-"}
        if "x-amz-security-token" in query:
            headers["X-Amz-Security-Token"] = query["x-amz-security-token"]
    elif "Authorization" not in self.headers:
        if iam_request_cls.__name__ == "S3IAMRequest":
            raise S3AccessDeniedError()
        raise JsonRESTError("AccessDeniedException", "the request is not signed")
    request = iam_request_cls(account_id=self.current_account, method=self.method, path=path, data=self.data,
                              body=self.raw_body, headers=headers, action=self._get_action())
    service, res = request._service, resource
    try:
        if not presigned and service not in _SIGNATURE_UNCHECKED:
            request.check_signature()
        for action, res in _required(self, service, request._action.split(":", 1)[1], resource):
            request._action = f"{service}:{action}"
            request.check_action_permitted(res)
        if service == "s3" and self.method in ("GET", "HEAD") and _missing_object(self.current_account, resource):
            # S3 tells a caller that a key does not exist (404) only if it may list the
            # bucket; others get 403 for it too
            res = resource.split("/", 1)[0]
            request._action = "s3:ListBucket"
            request.check_action_permitted(res)
    except HTTPException as exc:
        if service in _JSON_SERVICES and exc.code == 403 and "AccessDenied" in str(exc.description):
            raise JsonRESTError("AccessDeniedException",
                                f"{request._access_key.arn} is not authorized to perform: {request._action} "
                                f"on resource: {res}") from exc
        raise


@functools.cache
def _operations(service: str) -> dict[str, str]:
    import botocore.session

    name = {"states": "stepfunctions"}.get(service, service)
    try:
        model = botocore.session.get_session().get_service_model(name)
    except Exception:
        return {}
    return {op.lower(): op for op in model.operation_names}


def _operation_name(service: str, action: str) -> str:
    """IAM spells actions like the API's operations; moto's Batch gives them lower-cased."""
    return _operations(service).get(action.lower(), action)


def _missing_object(account: str, resource: str) -> bool:
    from moto.s3.models import s3_backends

    bucket, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
    if not key or "*" in bucket:
        return False
    backend = s3_backends[account]["aws"]
    try:
        return backend.get_bucket(bucket) is not None and key not in backend.get_bucket(bucket).keys
    except Exception:  # no such bucket: S3 answers that itself
        return False


def _arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}"


def _body(self: Any) -> dict[str, Any]:
    """The request's JSON parameters (services that parse them early keep the raw body)."""
    if isinstance(self.body, dict):
        return self.body
    try:
        data = json.loads(self.raw_body or "{}")
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _required(self: Any, service: str, action: str, resource: str) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs a request needs, as AWS would evaluate them."""
    action = _IAM_ACTIONS.get((service, action), _operation_name(service, action))
    if service == "s3":
        needed = [(action, resource)]
        source = self.headers.get("x-amz-copy-source")
        if source:  # a copy reads its source too
            bucket_key = unquote(source.split("?", 1)[0]).lstrip("/")
            needed.append(("GetObject", f"arn:aws:s3:::{bucket_key}"))
        return needed
    if service == "dynamodb":
        body = _body(self)
        if action == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}
            return [(kinds[k], _arn("dynamodb", f"table/{v['TableName']}"))
                    for item in body.get("TransactItems", []) for k, v in item.items() if k in kinds]
        if action in ("BatchGetItem", "BatchWriteItem"):
            return [(action, _arn("dynamodb", f"table/{t}")) for t in body.get("RequestItems", {})]
        table = body.get("TableName")
        if not table:
            return [(action, "*")]
        if body.get("IndexName"):
            return [(action, _arn("dynamodb", f"table/{table}/index/{body['IndexName']}"))]
        return [(action, _arn("dynamodb", f"table/{table}"))]
    if service == "states":
        body = _body(self)
        arn = body.get("executionArn") or body.get("stateMachineArn")
        return [(action, arn or "*")]
    if service == "events":
        body = _body(self)
        buses = {e.get("EventBusName") or "default" for e in body.get("Entries", [])} or {"default"}
        return [(action, b if b.startswith("arn:") else _arn("events", f"event-bus/{b}")) for b in sorted(buses)]
    if service == "lambda":
        name = unquote(self.uri_match.get("FunctionName") or "") if isinstance(self.uri_match, dict) else ""
        if not name:
            return [(action, "*")]
        return [(action, name if name.startswith("arn:") else _arn("lambda", f"function:{name}"))]
    if service == "batch":
        body = _body(self)
        if action == "SubmitJob":
            queue, definition = body.get("jobQueue", ""), body.get("jobDefinition", "")
            return [(action, queue if queue.startswith("arn:") else _arn("batch", f"job-queue/{queue}")),
                    (action, definition if definition.startswith("arn:")
                     else _arn("batch", f"job-definition/{definition}"))]
        if action == "TerminateJob" and body.get("jobId"):
            return [(action, _arn("batch", f"job/{body['jobId']}"))]
        return [(action, "*")]
    if service == "apigateway":
        # API Gateway's IAM actions are the HTTP verbs, its resources the REST paths
        path = urlsplit(str(getattr(self, "path", "") or "")).path
        return [(str(self.method).upper(), f"arn:aws:apigateway:{REGION}::{path}")]
    if service == "secretsmanager":
        secret = str(_body(self).get("SecretId") or "")
        if not secret:
            return [(action, "*")]
        return [(action, secret if secret.startswith("arn:") else _arn("secretsmanager", f"secret:{secret}"))]
    return [(action, resource)]


# --- the same roles around a moto stack built by tests ---------------------------------------------

#: What each function's code runs in the shared package: tests that call a stage directly
#: run it as the function (or Batch job) whose handler calls it.
PIPELINE_ROLES = {"download": "DownloadFunction", "normalize": "NormalizeFunction", "merge": "MergeFunction",
                  "notify": "NotifyFunction", "mark_failed": "MarkFailedFunction", "transcribe_shard": None}


def enforce_on_test_stack(table: str, bucket: str, state_machine_arn: str) -> IamEnforcer:
    """Roles from ``template.yaml`` around a moto stack a test made with its own names
    (the table, the bucket and the state machine stand in for the stack's), enforced."""
    import boto3

    from ytcaption_local.handlers import FUNCTIONS_DIR
    from ytcaption_local.stack import Resolver, transformed_template
    from ytcaption_local.template import ROOT

    template, local = _transformed(transformed_template)
    res = template["Resources"]
    stack = "ytcaption-test"
    names = {lid: f"{stack}-{lid}"[:64] for lid in res}
    refs: dict[str, Any] = {"AWS::StackName": stack, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    getatt: dict[tuple[str, str], str] = {}
    for lid, r in res.items():
        kind = r["Type"].split("::")[1].lower()
        refs[lid] = names[lid]
        for attr in ("Arn", "Name", "QueueName", "LatestVersionNumber", "RepositoryUri"):
            getatt[(lid, attr)] = f"arn:aws:{kind}:{REGION}:{ACCOUNT}:{names[lid]}"
        if r["Type"] == "AWS::IAM::Role":
            getatt[(lid, "Arn")] = f"arn:aws:iam::{ACCOUNT}:role/{names[lid]}"
        elif r["Type"] == "AWS::Lambda::Function":
            getatt[(lid, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{names[lid]}"
        elif r["Type"] == "AWS::SecretsManager::Secret":  # its Ref is its ARN
            refs[lid] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{names[lid]}"
        elif r["Type"] == "AWS::SNS::Topic":
            refs[lid] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{names[lid]}"
    refs.update({"JobsTable": table, "MediaBucket": bucket, "TranscriptionStateMachine": state_machine_arn,
                 "TranscriberJobQueue": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{names['TranscriberJobQueue']}",
                 "TranscriberJobDefinition":
                     f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{names['TranscriberJobDefinition']}:1"})
    getatt.update({("MediaBucket", "Arn"): f"arn:aws:s3:::{bucket}",
                   ("JobsTable", "Arn"): f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
                   ("TranscriptionStateMachine", "Name"): state_machine_arn.rsplit(":", 1)[-1]})
    for pname, p in template.get("Parameters", {}).items():
        refs.setdefault(pname, p.get("Default", ""))
    resolve = Resolver(refs, getatt, template.get("Conditions", {}))

    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:  # a client takes ~40 ms to build; tests make a stack each
            clients[service] = boto3.client(service, region_name=REGION)
        return clients[service]

    for lid, r in res.items():
        if r["Type"] == "AWS::IAM::Role":
            client("iam").create_role(RoleName=names[lid], AssumeRolePolicyDocument=json.dumps(
                resolve(r["Properties"]["AssumeRolePolicyDocument"])))
    enforcer = IamEnforcer()
    # policies that name the bucket by its stack pattern name the test's bucket
    enforcer.aliases = {f"{stack}-{ACCOUNT}-{REGION}-media": bucket}
    enforcer.install(client, res, resolve)
    clients.clear()  # those sign with the environment's keys; later ones as the caller of the moment
    for lid, r in res.items():
        if r["Type"] == "AWS::Lambda::Function":
            props = r["Properties"]
            if props.get("PackageType") == "Image":
                code = FUNCTIONS_DIR / props["ImageConfig"]["Command"][0].split(".", 1)[0]
            else:
                code = ROOT / local[lid]
            enforcer.code_dirs[code.resolve()] = lid
    return enforcer


_TRANSFORMED: list[tuple[dict[str, Any], dict[str, str]]] = []


def _transformed(make: Callable[[], tuple[dict[str, Any], dict[str, str]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The SAM transform takes about a second: once per test session."""
    if not _TRANSFORMED:
        _TRANSFORMED.append(make())
    import copy

    return copy.deepcopy(_TRANSFORMED[0])
