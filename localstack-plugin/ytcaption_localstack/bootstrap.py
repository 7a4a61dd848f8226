"""The runtime loop inside one host-process execution environment (stdlib only).

Runs under the function's interpreter (Python 3.12 for zip functions), so it
imports nothing from LocalStack or the plugin. The executor talks to it over
two inherited pipes, one JSON document per line; the handler's own stdout and
stderr go to the environment's log file.
"""

import importlib
import json
import os
import sys
import time
import traceback


class Context:
    """The Lambda context object handlers (and Powertools) read."""

    def __init__(self, request, timeout_s):
        self.aws_request_id = request["invoke-id"]
        self.invoked_function_arn = request["invoked-function-arn"]
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + timeout_s

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc, error_type=None):
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def main():
    # the plugin's directory must not shadow the function's modules
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    inbound = os.fdopen(int(os.environ.pop("_YTC_IN_FD")), "r", encoding="utf-8")
    outbound = os.fdopen(int(os.environ.pop("_YTC_OUT_FD")), "w", encoding="utf-8")
    timeout_s = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))

    def send(message):
        sys.stdout.flush()
        sys.stderr.flush()
        outbound.write(json.dumps(message) + "\n")
        outbound.flush()

    module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
    handler, init_error = None, None
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # what Lambda reports as an init failure
        init_error = _error(exc, "Runtime.ImportModuleError")
        traceback.print_exc()
    send({"ready": True})
    for line in inbound:
        request = json.loads(line)
        request_id = request["invoke-id"]
        print(f"START RequestId: {request_id}", flush=True)
        started = time.monotonic()
        if init_error is not None:
            send({"id": request_id, "error": True, "payload": json.dumps(init_error)})
            continue
        try:
            event = json.loads(request["payload"]) if request["payload"] else {}
            result = handler(event, Context(request, timeout_s))
            reply = {"id": request_id, "error": False, "payload": json.dumps(result)}
        except Exception as exc:
            traceback.print_exc()
            failure = _error(exc)
            failure["requestId"] = request_id
            reply = {"id": request_id, "error": True, "payload": json.dumps(failure)}
        print(f"END RequestId: {request_id} Duration: {(time.monotonic() - started) * 1000:.2f} ms", flush=True)
        send(reply)


if __name__ == "__main__":
    main()
