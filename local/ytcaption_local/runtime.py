"""The embedded local runtime: the real stack on one machine, no Docker, no AWS account.

- moto serves S3, DynamoDB, Step Functions, Lambda, Batch, IAM and EventBridge
  on a loopback port (``AWS_ENDPOINT_URL`` points every client at it);
- the resources come from the real ``template.yaml``, transformed by
  aws-sam-translator and deployed by moto's own CloudFormation, with hand code
  only where moto lacks a type or a property (``ytcaption_local.stack`` says
  which and why), and the real ``statemachines/transcription.asl.json`` with
  its substitutions;
- moto's internals it relies on are patched by ``ytcaption_local.motopatch``,
  installed by ``start`` and undone by ``stop``;
- Lambda invocations run the real handlers in-process from their ``CodeUri``
  (or the image command's directory under ``functions/``);
- Batch jobs run the real worker entrypoint (``ytcaption.worker``) on the CPU
  model, a few at a time like a small compute environment;
- S3 upload notifications reach the trigger function (moto delivers them);
- the HTTP API is served on ``http://127.0.0.1:3000`` by a proxy-event gateway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytcaption_local import environments, lockdown, motopatch, stack, state
from ytcaption_local.faults import FaultInjector
from ytcaption_local.handlers import FUNCTIONS_DIR, LambdaContext, load_handler
from ytcaption_local.iam import IamEnforcer
from ytcaption_local.stack import NO_VALUE, Resolver, transformed_template  # noqa: F401 - where tests find them
from ytcaption_local.template import ROOT

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "ytcaption-local"


def bind_error(port: int) -> OSError | None:
    """Why the runtime's servers could not listen on ``port`` of 127.0.0.1 (None: they could).
    Bound as they bind (werkzeug sets SO_REUSEADDR): a port whose last run's connections linger
    in TIME_WAIT is free, one with a live listener is not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def _port_if_free(port: int) -> int:
    return port if port and bind_error(port) is None else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    env: dict[str, str]
    timeout: int
    #: EventInvokeConfig of the function: retries of asynchronous events, failure queue URL.
    async_retries: int | None = None
    on_failure_queue: str | None = None


@dataclass
class RuntimeOptions:
    api_port: int = 3000
    moto_port: int = 0
    #: Audio per Batch job locally, at most; a job gets a multiple of ``batch_slots`` shards of
    #: equal audio, so the slots finish together. Long shards keep Whisper's context (README, Performance).
    shard_audio_s: float = 600.0
    #: Batch jobs running at once (a compute environment of this many "GPUs").
    batch_slots: int = max(1, os.cpu_count() or 1)
    work_dir: str | None = None
    default_model: str = "tiny.en"
    #: The template's BakedModels: none locally, where models come from offline packages
    #: (the catalogue adds the installed ones); naming a model here claims the worker has it.
    baked_models: tuple[str, ...] = ()
    #: Handlers share one process (and Powertools' logger) locally: keep it quiet.
    log_level: str = "WARNING"
    #: The key clients send in X-Api-Key (API Gateway checks it on AWS); random if unset.
    api_key: str | None = None
    #: The key GET /v1/admin/* wants in X-Admin-Key; random if unset.
    admin_key: str | None = None
    #: Run the reconciler this often (seconds); None: only when asked (tests).
    reconcile_every_s: float | None = None
    #: HMAC key webhooks are signed with; random if unset.
    webhook_secret: str | None = None
    #: Keep jobs, results and keys here across restarts (see ytcaption_local.state); None: in memory.
    state_dir: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Every function and the Batch worker call AWS as their template role (see ytcaption_local.iam).
    enforce_iam: bool = True
    #: Requests one API function serves at once (its Lambda execution environments; each
    #: serves one at a time). More wait for a free one, as throttled requests would be retried.
    function_concurrency: int = 32


class LocalRuntime:
    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.functions: dict[str, FunctionSpec] = {}
        self.outputs: dict[str, str] = {}
        self.invocations: list[tuple[str, str | None, str]] = []  # (function, job id, outcome)
        self.api_calls: list[tuple[str, str, str]] = []  # (function, method, path) the gateway routed
        self.batch_runs: list[tuple[str, int, bool]] = []  # (job id, shard, success), one per attempt
        #: The job definition's RetryStrategy (Attempts, EvaluateOnExit), applied as Batch would.
        self.batch_retry: dict[str, Any] = {}
        #: Test hooks: called before a Batch job's worker runs; raising fails that attempt as a
        #: lost instance would ("Host EC2 ... terminated"), which the RetryStrategy retries.
        self.batch_hooks: list[Callable[[str, int], None]] = []
        self._batch_slots = threading.Semaphore(self.options.batch_slots)
        #: Real AWS error responses for chosen requests (see ytcaption_local.faults).
        self.faults = FaultInjector()
        #: The template's roles, enforced on every call (see ytcaption_local.iam).
        self.iam = IamEnforcer()
        self._stopping = threading.Event()
        from ytcaption.telemetry import MemorySink

        #: Every metric the stages emitted (what CloudWatch would receive on AWS).
        self.metrics = MemorySink()
        #: Functions that raise on their next invocations: logical id -> exceptions to raise.
        self.lambda_faults: dict[str, list[BaseException]] = {}
        self.admin_key = (self.options.admin_key or os.environ.get("YTCAPTION_LOCAL_ADMIN_KEY")
                          or secrets.token_urlsafe(24))
        self.api_key = self.options.api_key or os.environ.get("YTCAPTION_LOCAL_API_KEY") or secrets.token_urlsafe(24)
        #: The key every webhook is signed with (X-YTCaption-Signature).
        self.webhook_secret = self.options.webhook_secret or secrets.token_hex(32)
        if not 20 <= len(self.api_key) <= 128:
            raise ValueError("an API key is 20 to 128 characters long (as API Gateway requires)")
        self._moto: Any = None
        self._gateway: Any = None
        self._rest_api: dict[str, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self._state: state.StateDir | None = None
        self._snapshot_lock = threading.Lock()
        self._aws_endpoints: tuple[str, ...] = ()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: moto's patches (ytcaption_local.motopatch), undone by stop()
        self._patches = contextlib.ExitStack()
        self.api_url = ""
        self.endpoint = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a runtime that failed to start leaves no patch, port or temp dir behind
            raise

    def _start(self) -> LocalRuntime:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        state.clean_stale_temp_dirs()  # left behind by a runtime killed with -9
        if self.options.state_dir:
            self._state = state.StateDir(self.options.state_dir)
            given = self.options.api_key or os.environ.get("YTCAPTION_LOCAL_API_KEY")
            self.api_key = self._state.secret("api_key", given, lambda: self.api_key)
            self.webhook_secret = self._state.secret("webhook_secret", self.options.webhook_secret,
                                                     lambda: self.webhook_secret)
        port = self.options.moto_port or (self._state and _port_if_free(self._state.moto_port())) or free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._tmp = tempfile.TemporaryDirectory(prefix=state.TEMP_PREFIX)
        state.claim_temp_dir(Path(self._tmp.name))
        self._set_env({
            "MOTO_PORT": str(port),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "POWERTOOLS_TRACE_DISABLED": "1",
            "HF_HUB_OFFLINE": "1",
            "MOTO_ALLOW_NONEXISTENT_REGION": "true",
        })
        self._patches.enter_context(motopatch.runtime_patches(self._invoke, self._run_batch_job))
        secret = secrets.token_urlsafe(24)  # only the runtime reaches its AWS endpoint (lockdown.py)
        self._aws_endpoints = (self.endpoint, f"http://localhost:{port}")  # moto's own clients use localhost
        for endpoint in self._aws_endpoints:
            lockdown.install(endpoint, secret)
        self._moto = _MotoServer(port, self.faults, secret)
        self._moto.start()
        self._configure_moto()
        from ytcaption.observability import logger, metrics

        logger.setLevel(self.options.log_level)
        # EMF metrics go to CloudWatch through stdout on AWS; locally every function shares
        # one process, so they are dropped (Powertools' disabled mode never clears them)
        provider = metrics.provider
        provider.flush_metrics = lambda *args, **kwargs: provider.clear_metrics()  # type: ignore[method-assign]
        from ytcaption import telemetry

        telemetry.set_sink(self.metrics)  # stage metrics kept in memory (bench, console, tests)
        self._reset_cached_clients()
        self._deploy()
        if self._state is not None:
            self._restore_state(self._state)
        from ytcaption_local.apigw import LocalApiGateway
        from ytcaption_local.gateway import Gateway

        api = self.functions["ApiFunction"]
        # routes, authorizer and key check as API Gateway does them (ytcaption_local.apigw)
        # Up to function_concurrency requests at once per function, as that many Lambda
        # execution environments would serve them, each one request at a time: Powertools'
        # per-request state is kept per thread (ytcaption_local.environments).
        self._patches.enter_context(environments.per_thread())
        self._patches.enter_context(environments.log_keys_per_environment())
        slots = {lid: threading.BoundedSemaphore(self.options.function_concurrency) for lid in self.functions}

        def invoke(lid: str, ev: dict[str, Any], ctx: Any) -> Any:
            if ev.get("type") != "REQUEST":  # not the authorizer's own event
                self.api_calls.append((lid, str(ev.get("httpMethod")), str(ev.get("path"))))
            with slots[lid]:
                return self._call(self.functions[lid], ev, ctx)

        front = LocalApiGateway(self._rest_api, invoke, self.api_key, region=REGION, account=ACCOUNT)
        self._gateway = Gateway(front, lambda: LambdaContext(function_name=api.name), port=self.options.api_port)
        from ytcaption_local.console import Console

        self._gateway.console = Console(self)  # the web console at /console
        self._gateway.start()
        self.api_url = self._gateway.url
        self._set_env({"DENIED_LOOPBACK_PORTS": f"{port},{self._gateway.port}"})  # no webhook at ourselves
        self._reset_cached_clients()
        if self._state is not None:
            try:
                self.reconcile(grace_s=0)  # jobs the previous run left running have no execution now
            except Exception:  # the scheduled runs will try again
                logging.getLogger(__name__).exception("reconciler run at start failed")
            threading.Thread(target=self._snapshot_loop, name="state-snapshots", daemon=True).start()
        if self.options.reconcile_every_s:
            threading.Thread(target=self._reconcile_loop, args=(self.options.reconcile_every_s,),
                             name="reconciler", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._gateway is not None:
            self._gateway.stop()
        if self._state is not None and self._moto is not None and self.outputs:
            with self._snapshot_lock:
                self._snapshot()
        if self._moto is not None:
            self._moto.stop()
        for endpoint in self._aws_endpoints:
            lockdown.uninstall(endpoint)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
        self.iam.uninstall()
        self._patches.close()
        self._reset_cached_clients()
        from ytcaption import telemetry

        telemetry.set_sink(None)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _limit_blas(job_definition: dict[str, Any]) -> None:
        """The worker container's ``OPENBLAS_NUM_THREADS`` (template), applied to this process.

        OpenBLAS reads the variable when it loads, and here numpy is loaded long before the
        worker runs in this process, so the limit is set through threadpoolctl instead. It holds
        for the in-process Lambdas too (their numpy work is small). Measured on the 10-minute
        diarize bench job: numpy's second BLAS thread spun about 0.12 s after every chunk's
        fbank, about 1.2 CPU-s per 5 minutes of audio, on the core the other Batch slot decodes on.
        """
        container = job_definition.get("ContainerProperties", {})
        env = {e.get("Name"): e.get("Value") for e in container.get("Environment", [])}
        threads = env.get("OPENBLAS_NUM_THREADS")
        if threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(threads), user_api="blas")

    def _set_env(self, values: dict[str, str]) -> None:
        for k, v in values.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v

    def _configure_moto(self) -> None:
        import urllib.request

        # Lambda keeps moto's default (use_docker=True, never reached): with False moto
        # swaps in LambdaSimpleBackend, which echoes the event and never calls
        # _invoke_lambda, the method the runtime routes to the real handlers.
        config = {"batch": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
        req = urllib.request.Request(f"{self.endpoint}/moto-api/config", data=json.dumps(config).encode(),  # noqa: S310
                                     method="POST", headers={"Content-Type": "application/json",
                                                             lockdown.HEADER: self._moto.secret})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own loopback server
            resp.read()
        # moto's ASL engine logs parse trees at ERROR even for errors the machine handles
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)

    @staticmethod
    def _reset_cached_clients() -> None:
        from ytcaption import services

        services.reset()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)

    # --- deploying the template ------------------------------------------------------------------

    def _deploy(self) -> None:
        """The template, deployed by moto's CloudFormation (what it lacks: ytcaption_local.stack)."""
        deployed = stack.deploy(self.client, STACK, {
            "DefaultModel": self.options.default_model, "SyncModel": self.options.default_model,
            "BakedModels": list(self.options.baked_models),
        }, webhook_secret=self.webhook_secret, api_key=self.api_key)
        res, physical, resolve = deployed.resources, deployed.physical, deployed.resolve
        self._rest_api = next(iter(deployed.of_type("AWS::ApiGateway::RestApi").values()))["Properties"]

        # the functions as deployed (their environment as CloudFormation resolved it)
        lam = self.client("lambda")
        env_union: dict[str, str] = {}
        for lid, r in deployed.of_type("AWS::Lambda::Function").items():
            props = r["Properties"]
            config = lam.get_function_configuration(FunctionName=physical[lid])
            env = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
            for k, v in env.items():
                if env_union.get(k, v) != v:
                    raise RuntimeError(f"functions disagree on {k}; in-process handlers share one environment")
                env_union[k] = v
            if props.get("PackageType") == "Image":
                directory, _, handler = props["ImageConfig"]["Command"][0].partition(".")
                code_dir = FUNCTIONS_DIR / directory
            else:
                code_dir, handler = ROOT / deployed.local_paths[lid], props["Handler"]
            self.functions[lid] = FunctionSpec(lid, physical[lid], code_dir, handler, env,
                                               int(config.get("Timeout") or props.get("Timeout", 3)))
        for r in deployed.of_type("AWS::Lambda::EventInvokeConfig").values():
            p = r["Properties"]
            spec = self.functions[p["FunctionName"]["Ref"]]
            spec.async_retries = int(p.get("MaximumRetryAttempts", 2))
            dest = (p.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            if isinstance(dest, dict) and "Fn::GetAtt" in dest:
                spec.on_failure_queue = self._queue_url(physical[dest["Fn::GetAtt"][0]])
        self.batch_retry = dict(resolve(res["TranscriberJobDefinition"]["Properties"]["RetryStrategy"]))
        self._limit_blas(res["TranscriberJobDefinition"]["Properties"])
        self._set_env({
            **env_union,
            "WHISPER__DEVICE": "cpu",
            "WHISPER__COMPUTE_TYPE": "int8",
            "WHISPER__CPU_THREADS": "1",
            # one thread per Batch slot for the speaker embeddings too: two workers share two cores
            "DIARIZATION__THREADS": "1",
            "WHISPER__NUM_WORKERS": str(self.options.batch_slots),
            # one stream of chunks per shard (the CPU default) and a shard per slot: each chunk is
            # conditioned on the one before it, as in-process (README, Performance)
            "MEDIA__SHARD_AUDIO_S": str(self.options.shard_audio_s),
            # (the setting's bound is 64: a machine with more cores still gets shards a multiple of 64)
            "MEDIA__PARALLEL_SHARDS": str(min(self.options.batch_slots, 64)),
            "POWERTOOLS_LOG_LEVEL": self.options.log_level,
            # the local runtime fetches from this machine (the demo, tests): allowed explicitly
            "ALLOW_LOOPBACK_URLS": "true",
            "ADMIN_KEY_SHA256": hashlib.sha256(self.admin_key.encode()).hexdigest(),
            "WORK_DIR": str(Path(self._tmp.name if self._tmp else tempfile.gettempdir()) / "work"),
            **self.options.extra_env,
        })
        if self.options.enforce_iam:
            for lid in deployed.of_type("AWS::IAM::Role"):
                resolve.getatt[(lid, "Arn")] = f"arn:aws:iam::{ACCOUNT}:role/{physical[lid]}"
            self.iam.install(self.client, res, resolve, deployed=True)
        self.outputs = {"ApiUrl": "", "BucketName": physical["MediaBucket"], "JobsTableName": physical["JobsTable"],
                        "StateMachineArn": resolve.refs["TranscriptionStateMachine"],
                        "DeadLetterQueueUrl": self._queue_url(physical.get("UploadTriggerDeadLetterQueue", ""))}

    def _queue_url(self, ref: str) -> str:
        """A queue's URL on this endpoint (its Ref, from moto's CloudFormation, names AWS's host)."""
        if not ref:
            return ""
        return str(self.client("sqs").get_queue_url(QueueName=ref.rsplit("/", 1)[-1])["QueueUrl"])

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke a function through moto's Lambda API, as AWS would (errors raise)."""
        resp = self.client("lambda").invoke(FunctionName=self.functions[logical_id].name,
                                            Payload=json.dumps(event).encode())
        payload = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            raise RuntimeError(f"{logical_id} failed: {payload}")
        return payload

    def reconcile(self, grace_s: float | None = None) -> Any:
        """Run the scheduled reconciler once (EventBridge's rate(5 minutes) on AWS)."""
        return self.invoke("ReconcilerFunction", {} if grace_s is None else {"grace_s": grace_s})

    # --- the state directory (ytcaption_local.state) ---------------------------------------------

    def _restore_state(self, saved: state.StateDir) -> None:
        s3, bucket = self.client("s3"), self.outputs["BucketName"]
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        notifications.pop("ResponseMetadata", None)
        # restored uploads must not start their jobs again
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        saved.restore(self.client("dynamodb"), s3, self.outputs["JobsTableName"], bucket)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
        saved.save_moto_port(int(self.endpoint.rsplit(":", 1)[1]))
        self._set_env({"WORK_DIR": str(saved.work)})

    def _snapshot(self) -> None:
        if self._state is not None:
            self._state.snapshot(self.client("dynamodb"), self.client("s3"), self.outputs["JobsTableName"],
                                 self.outputs["BucketName"])

    def _snapshot_loop(self, every_s: float = 2.0) -> None:
        while not self._stopping.wait(every_s):
            try:
                with self._snapshot_lock:
                    self._snapshot()
            except Exception:  # keep trying; the next snapshot covers this one
                logging.getLogger(__name__).exception("state snapshot failed")

    def _reconcile_loop(self, every_s: float) -> None:
        while not self._stopping.wait(every_s):
            try:
                self.reconcile()
            except Exception:  # keep the schedule going, like EventBridge would
                logging.getLogger(__name__).exception("reconciler run failed")

    # --- running functions and Batch jobs -----------------------------------------------------------

    def _spec_by_name(self, name: str) -> FunctionSpec:
        for spec in self.functions.values():
            if spec.name == name:
                return spec
        raise KeyError(f"no local function {name}")

    def _call(self, spec: FunctionSpec, event: Any, context: Any) -> Any:
        handler = load_handler(spec.code_dir, spec.handler)
        with self.iam.as_function(spec.logical_id), environments.environment():
            return handler(event, context)

    def _invoke(self, function_name: str, event: Any) -> Any:
        spec = self._spec_by_name(function_name)
        if isinstance(event, dict) and event.get("Records") and spec.async_retries is not None:
            return self._invoke_async(spec, event)
        return self._invoke_once(spec, event)

    def _invoke_async(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        """S3 notifications invoke asynchronously: Lambda retries a failed event
        (EventInvokeConfig.MaximumRetryAttempts), then sends it to the on-failure
        destination. moto calls the function once and drops errors; this keeps
        Lambda's behaviour."""
        attempts = 1 + int(spec.async_retries or 0)
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                return self._invoke_once(spec, event)
            except Exception as exc:
                last = exc
                if attempt + 1 < attempts:
                    time.sleep(0.2 * (attempt + 1))
        if spec.on_failure_queue and last is not None:
            self.client("sqs").send_message(QueueUrl=spec.on_failure_queue, MessageBody=json.dumps({
                "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": attempts,
                                   "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}"},
                "requestPayload": event,
                "responseContext": {"functionError": "Unhandled"},
                "responsePayload": {"errorType": type(last).__name__, "errorMessage": str(last)},
            }))
        raise last if last is not None else RuntimeError("no attempt made")

    def _invoke_once(self, spec: FunctionSpec, event: Any) -> Any:
        ctx = LambdaContext(function_name=spec.name, invoked_function_arn=(
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}"),
            deadline_ms=time.time() * 1000 + spec.timeout * 1000)
        job_id = event.get("job_id") if isinstance(event, dict) else None
        try:
            injected = self.lambda_faults.get(spec.logical_id)
            if injected:
                raise injected.pop(0)
            result = self._call(spec, event, ctx)
        except Exception as exc:
            self.invocations.append((spec.logical_id, job_id, type(exc).__name__))
            raise
        self.invocations.append((spec.logical_id, job_id, "ok"))
        return result

    def _run_batch_job(self, job: Any) -> bool:
        """Run the worker, retried as the job definition's RetryStrategy says (moto does not)."""
        overrides = job.container_overrides or {}
        env = {e["name"]: e["value"] for e in overrides.get("environment", []) if "name" in e}
        job_id, shard = env.get("JOB_ID", ""), int(env.get("SHARD_INDEX", "-1"))
        attempts = max(1, int(self.batch_retry.get("Attempts", 1)))
        for attempt in range(1, attempts + 1):
            code: int | None = None
            status_reason = ""
            with self._batch_slots:
                try:
                    for hook in list(self.batch_hooks):
                        hook(job_id, shard)
                except BatchAttemptTimeout:
                    # as AWS Batch: the attempt ran past attemptDurationSeconds; a timed-out
                    # job is not retried
                    job.job_stopped_reason = "Job attempt duration exceeded timeout"
                    self.batch_runs.append((job_id, shard, False))
                    return False
                except Exception as exc:  # a hook stands for the instance going away (Spot reclaim)
                    status_reason = f"Host EC2 (local runtime) terminated: {exc}"
                else:
                    from ytcaption import worker

                    try:
                        args = ["--job-id", job_id, "--shard", str(shard)]
                        if env.get("SUBMITTED_AT"):
                            args += ["--submitted-at", env["SUBMITTED_AT"]]
                        with self.iam.as_batch_job(), environments.environment():
                            code = worker.main(args)
                    except Exception:
                        code = 1  # an uncaught exception in the container
            self.batch_runs.append((job_id, shard, code == 0))
            if code == 0:
                return True
            action = evaluate_on_exit(self.batch_retry.get("EvaluateOnExit") or [], exit_code=code,
                                      status_reason=status_reason)
            if action == "EXIT" or attempt == attempts or self._stopping.is_set():
                return False
        return False


class BatchAttemptTimeout(Exception):
    """Raised by a test hook: the Batch attempt ran past its timeout (attemptDurationSeconds)."""


def evaluate_on_exit(rules: list[dict[str, Any]], *, exit_code: int | None = None, reason: str = "",
                     status_reason: str = "") -> str:
    """AWS Batch's ``EvaluateOnExit``: the first rule whose every condition matches decides
    (``RETRY`` or ``EXIT``); with no match the job is retried. Patterns are globs."""
    from fnmatch import fnmatchcase

    for rule in rules:
        checks = [("OnExitCode", "" if exit_code is None else str(exit_code)), ("OnReason", reason),
                  ("OnStatusReason", status_reason)]
        present = [(rule[key], value) for key, value in checks if key in rule]
        if present and all(fnmatchcase(value, str(pattern)) for pattern, value in present):
            return str(rule["Action"]).upper()
    return "RETRY"


class _MotoServer:
    """moto's server app behind the fault injector, on a loopback port."""

    def __init__(self, port: int, faults: FaultInjector, secret: str) -> None:
        self.port, self.faults, self.secret = port, faults, secret
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.faults.app = DomainDispatcherApplication(create_backend_app)
        app = lockdown.Lockdown(self.faults, self.secret)
        self._server = make_server("127.0.0.1", self.port, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
