"""What API Gateway does between a request and the Lambda integrations, read from the
transformed template's REST API (its OpenAPI body), so the routes, the authorizer
and the gateway responses are the deployed ones, not a second copy:

- route a proxy event to the function of its path (literal paths before ``{proxy+}``);
- base64 the bodies of the API's binary media types (``multipart/form-data``);
- run the REQUEST authorizer, and with the key source ``AUTHORIZER`` check the key
  it hands back (``usageIdentifierKey``) against the usage plan's key;
- answer refusals with the API's gateway responses (``UNAUTHORIZED``, ``API_KEY``...).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: invoke(logical id of a function, event, context) -> the function's result (errors raise)
Invoke = Callable[[str, dict[str, Any], Any], Any]
_ARN_REF = re.compile(r"\$\{(\w+)\.Arn\}")


@dataclass
class Route:
    method: str  # "ANY" for x-amazon-apigateway-any-method
    path: str
    function: str
    authorizer: str | None
    api_key_required: bool

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(self.path))
        return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex) + "$")


def _function_of(uri: Any) -> str | None:
    """The logical id of the function an integration or authorizer URI points at."""
    sub = uri.get("Fn::Sub") if isinstance(uri, dict) else None
    if isinstance(sub, list):
        for value in sub[1].values():
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                return str(value["Fn::GetAtt"][0])
        sub = sub[0]
    match = _ARN_REF.search(sub) if isinstance(sub, str) else None
    return match.group(1) if match else None


class LocalApiGateway:
    def __init__(self, rest_api: dict[str, Any], invoke: Invoke, api_key: str, *, region: str = "us-east-1",
                 account: str = "123456789012") -> None:
        body = rest_api["Body"]
        self.invoke, self.api_key = invoke, api_key
        self.key_from_authorizer = rest_api.get("ApiKeySourceType") == "AUTHORIZER"
        self.binary_types = {t.lower() for t in body.get("x-amazon-apigateway-binary-media-types", [])}
        self.responses: dict[str, dict[str, Any]] = body.get("x-amazon-apigateway-gateway-responses", {})
        self.arn_prefix = f"arn:aws:execute-api:{region}:{account}:local"
        authorizers = {name: _function_of(d["x-amazon-apigateway-authorizer"].get("authorizerUri"))
                       for name, d in body.get("securityDefinitions", {}).items()
                       if "x-amazon-apigateway-authorizer" in d}
        self.routes: list[Route] = []
        for path, methods in body.get("paths", {}).items():
            for method, op in methods.items():
                function = _function_of(op.get("x-amazon-apigateway-integration", {}).get("uri"))
                if function is None:
                    continue
                schemes = [name for s in op.get("security", []) for name in s]
                self.routes.append(Route(
                    "ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path, function,
                    next((authorizers[s] for s in schemes if s in authorizers), None), "api_key" in schemes))
        # API Gateway prefers the most literal match: fewer path variables first
        self.routes.sort(key=lambda r: (r.path.count("{"), -len(r.path)))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        # the most specific resource wins; a method it lacks is not found (no fallback to {proxy+})
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                same = [r for r in self.routes if r.path == route.path and r.method in ("ANY", method)]
                return (same[0], m.groupdict()) if same else None
        return None

    def gateway_response(self, kind: str, default_status: int) -> dict[str, Any]:
        spec = self.responses.get(kind, {})
        body = spec.get("responseTemplates", {}).get("application/json", json.dumps({"message": kind}))
        return {"statusCode": int(spec.get("statusCode", default_status)),
                "headers": {"Content-Type": "application/json"}, "body": body, "isBase64Encoded": False}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        found = self.match(event["httpMethod"], event["path"])
        if found is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", 403)
        route, params = found
        event = {**event, "resource": route.path, "pathParameters": params or None}
        event["requestContext"] = {**event.get("requestContext", {}), "resourcePath": route.path}
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if event.get("body") and not event.get("isBase64Encoded") and ctype in self.binary_types:
            event["body"] = base64.b64encode(event["body"].encode("utf-8")).decode()
            event["isBase64Encoded"] = True
        if route.authorizer is not None:
            stage = event["requestContext"].get("stage", "local")
            method_arn = f"{self.arn_prefix}/{stage}/{event['httpMethod']}{event['path']}"
            auth_event = {"type": "REQUEST", "methodArn": method_arn,
                          **{k: event.get(k) for k in ("resource", "path", "httpMethod", "headers",
                                                       "multiValueHeaders", "queryStringParameters",
                                                       "pathParameters", "requestContext")}}
            try:
                result = self.invoke(route.authorizer, auth_event, context)
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    return self.gateway_response("UNAUTHORIZED", 401)
                return self.gateway_response("AUTHORIZER_FAILURE", 500)
            statements = result.get("policyDocument", {}).get("Statement", [])
            if not statements or any(s.get("Effect") != "Allow" for s in statements):
                return self.gateway_response("ACCESS_DENIED", 403)
            key = result.get("usageIdentifierKey") if self.key_from_authorizer else headers.get("x-api-key")
            event["requestContext"]["authorizer"] = {"principalId": result.get("principalId"),
                                                     **(result.get("context") or {})}
        else:
            key = headers.get("x-api-key")
        if route.api_key_required and not hmac.compare_digest(str(key or "").encode(), self.api_key.encode()):
            return self.gateway_response("INVALID_API_KEY", 403)
        event["requestContext"]["identity"] = {**event["requestContext"].get("identity", {}), "apiKey": key}
        return self.invoke(route.function, event, context)
