"""HTTP actions (`http.request`, `http.check`, `notify.webhook`) and the request helpers they share.

Every request gets the step's timeout and never follows redirects, because a redirect
could carry secret headers to another host. Failures are raised as ActionError. Connection
errors, timeouts, HTTP 5xx and 429 are temporary, and any other unexpected status is not.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, HttpUrl, JsonValue, model_validator

from breakglass.actions.base import (
    Action,
    ActionCancelledError,
    ActionContext,
    ActionError,
    Outputs,
    Params,
    PlanResult,
)
from breakglass.conditions import JsonCondition, evaluate
from breakglass.config.headers import HeaderMap, SecretHeaderMap, check_headers_once
from breakglass.config.model import HttpHealthCheck
from breakglass.config.redaction import MASK, REDACTOR, redact
from breakglass.config.secrets import resolve_secret
from breakglass.durations import Duration
from breakglass.errors import SecretError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OUTPUT_BODY_LIMIT = 64 * 1024  # bytes of response body kept in step outputs
ERROR_BODY_LIMIT = 500  # characters of response body quoted in an error message
PLAN_BODY_LIMIT = 200  # characters of request body shown in a plan
# Larger responses are rejected rather than held in memory: these actions call APIs and
# health endpoints, not downloads.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
StatusCode = Annotated[int, Field(ge=100, le=599)]

_NO_JSON = object()


class HeaderParams(Params):
    """Plain headers, and headers whose values are secret references resolved at run time."""

    headers: HeaderMap = Field(default_factory=dict)
    secret_headers: SecretHeaderMap = Field(
        default_factory=dict,
        description="Header name to secret reference (env:NAME or file:PATH), read when the request is sent.",
    )

    @model_validator(mode="after")
    def _no_header_twice(self) -> HeaderParams:
        check_headers_once(self.headers, self.secret_headers)
        return self


class HttpRequestParams(HeaderParams):
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    url: HttpUrl
    method: Method = "GET"
    json_body: JsonValue = Field(default=None, alias="json", description="Body sent as JSON.")
    body: str | None = Field(default=None, description="Body sent as text.")
    expect_status: list[StatusCode] | None = Field(
        default=None, description="Accepted statuses. Default: any 2xx."
    )

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestParams:
        if self.has_json and self.body is not None:
            raise ValueError("set either json or body, not both")
        return self

    @property
    def has_json(self) -> bool:
        return "json_body" in self.model_fields_set


class HttpRequestOutputs(Outputs):
    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    status: int
    headers: dict[str, str]
    body: str = Field(description="Response body as text, cut at 64 KiB.")
    body_truncated: bool
    json_body: JsonValue = Field(
        default=None, alias="json", description="Parsed body, or null when it is not JSON."
    )
    elapsed: float = Field(description="Seconds from sending the request to the end of the body.")


class HttpCheckParams(HeaderParams):
    """The conditions of one HTTP check, as a health check sets them minus name and severity."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    url: HttpUrl
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[StatusCode] = Field(default_factory=lambda: [200])
    json_conditions: list[JsonCondition] = Field(default_factory=list, alias="json")
    max_latency: Duration | None = Field(
        default=None, description="Responses slower than this fail the check."
    )
    warn_latency: Duration | None = Field(
        default=None, description="Responses slower than this pass with a warning."
    )

    @model_validator(mode="after")
    def _consistent(self) -> HttpCheckParams:
        if self.method == "HEAD" and self.json_conditions:
            raise ValueError("a HEAD response has no body, so json conditions cannot be checked")
        if (
            self.max_latency is not None
            and self.warn_latency is not None
            and self.warn_latency >= self.max_latency
        ):
            raise ValueError("warn_latency must be lower than max_latency")
        return self

    @classmethod
    def from_health_check(cls, check: HttpHealthCheck) -> HttpCheckParams:
        """Build check params from a configured health check, raising ValidationError if invalid."""
        return cls.model_validate(
            {
                "url": check.url,
                "method": check.method,
                "expect_status": check.expect_status,
                "json": check.json_conditions,
                "max_latency": _duration_text(check.max_latency),
                "warn_latency": _duration_text(check.warn_latency),
                "headers": check.headers,
                "secret_headers": check.secret_headers,
            }
        )


def _duration_text(seconds: float | None) -> str | None:
    # Duration accepts only text with a unit; nine decimals keep the value to the nanosecond.
    return None if seconds is None else f"{seconds:.9f}s"


class HttpCheckOutputs(Outputs):
    status: int
    latency: float = Field(description="Seconds from sending the request to the end of the body.")
    warnings: list[str] = Field(default_factory=list)


class NotifyWebhookParams(HeaderParams):
    url: HttpUrl
    payload: dict[str, JsonValue]


class NotifyWebhookOutputs(Outputs):
    status: int


@dataclass(frozen=True)
class OutgoingRequest:
    """A request ready to send. Its `headers` contain resolved secret values."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None

    def describe(self) -> str:
        return redact(f"{self.method} {self.url}")


@dataclass(frozen=True)
class Reply:
    """A received response with its whole body."""

    status: int
    headers: dict[str, str]
    content: bytes
    encoding: str
    latency: float

    def text(self) -> str:
        return redact(self.content.decode(self.encoding, errors="replace"))

    def excerpt(self) -> str:
        text = self.text().strip()
        if len(text) <= ERROR_BODY_LIMIT:
            return text
        return text[:ERROR_BODY_LIMIT] + "…"

    def parse_json(self) -> Any:
        """Return the parsed body, or the module's _NO_JSON marker when it is not JSON."""
        try:
            return json.loads(self.content)
        except (
            ValueError,
            RecursionError,
        ):  # RecursionError: the JSON nests deeper than the recursion limit
            return _NO_JSON


@dataclass
class CheckOutcome:
    """The failed conditions and warnings of one check response, and whether a retry may pass."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    temporary: bool = False
    retry_after: float | None = None
    # True when the status or the body format was wrong, so the body explains the failure.
    quote_body: bool = False

    def summary(self, reply: Reply) -> str:
        """Join failures and warnings, quoting the body when it explains a failure."""
        reasons = [*self.failures, *self.warnings]
        excerpt = reply.excerpt()
        if self.quote_body and excerpt:
            reasons.append(f"response body: {excerpt}")
        return "; ".join(reasons)


def format_seconds(seconds: float) -> str:
    """Format seconds as `250ms` or `2.5ms` below one second and as `1.5s` from there on."""
    if seconds >= 1:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + "s"
    milliseconds = seconds * 1000
    if milliseconds >= 10:
        return f"{milliseconds:.0f}ms"
    return f"{milliseconds:.2g}ms"


def target_of(url: HttpUrl) -> str:
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}"


def describe_headers(headers: dict[str, str], secret_headers: dict[str, str]) -> str:
    """Return the headers as `Name: value` pairs with every secret value shown as ***."""
    pairs = [f"{name}: {value}" for name, value in headers.items()]
    pairs += [f"{name}: {MASK}" for name in secret_headers]
    return redact(", ".join(pairs))


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def resolve_headers(params: HeaderParams, base_dir: Path) -> dict[str, str]:
    """Return the request headers with every secret reference read and registered for redaction."""
    headers = dict(params.headers)
    for name, reference in params.secret_headers.items():
        try:
            headers[name] = resolve_secret(reference, base_dir=base_dir)
        except SecretError as e:
            hint = f" ({e.hint})" if e.hint else ""
            raise ActionError(f"cannot read secret header {name}: {e.message}{hint}") from e
    return headers


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return the delay in seconds that a Retry-After header requests, or None if it is invalid.

    The header contains either a number of seconds or an HTTP date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


# Exceptions that sending can raise: httpx errors, and UnicodeEncodeError for a non-ASCII
# header value.
TRANSPORT_ERRORS = (httpx.HTTPError, httpx.InvalidURL, UnicodeEncodeError)


def transport_error(request: OutgoingRequest, error: Exception, timeout: float) -> ActionError:
    """Map one of TRANSPORT_ERRORS to an ActionError that names the request and the cause."""
    where = request.describe()
    if isinstance(error, UnicodeEncodeError):
        return ActionError(f"{where} was not sent: header values must be ASCII")
    if isinstance(error, httpx.TimeoutException):
        message = f"{where} timed out after {format_seconds(timeout)} ({type(error).__name__})"
        return ActionError(message, temporary=True, unreachable=True)
    if isinstance(error, httpx.LocalProtocolError | httpx.UnsupportedProtocol | httpx.InvalidURL):
        # The exception text can quote header values, so it is not repeated here.
        message = f"{where} is invalid and was not sent; check the URL and the header values"
        return ActionError(message)
    if isinstance(error, httpx.TransportError):
        detail = str(error) or "no details"
        message = f"{where} failed: {type(error).__name__}: {detail}"
        return ActionError(
            redact(message), temporary=True, unreachable=isinstance(error, httpx.NetworkError)
        )
    return ActionError(redact(f"{where} failed: {type(error).__name__}: {error}"))


def status_error(
    request: OutgoingRequest,
    reply: Reply,
    expected: Collection[int] | None,
    now: datetime,
) -> ActionError | None:
    """Return the error for an unexpected status, or None. `expected=None` accepts any 2xx."""
    status = reply.status
    if (expected is None and 200 <= status < 300) or (expected is not None and status in expected):
        return None
    expected_text = "2xx" if expected is None else " or ".join(str(code) for code in expected)
    message = f"{request.describe()} returned HTTP {status}, expected {expected_text}"
    if 300 <= status < 400:
        message += "; redirects are not followed, so use the final URL"
    excerpt = reply.excerpt()
    if excerpt:
        message += f"; response body: {excerpt}"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(reply.headers.get("retry-after"), now)
    temporary = status >= 500 or status == 429
    return ActionError(message, temporary=temporary, retry_after=retry_after)


def append_chunk(buffer: bytearray, chunk: bytes, request: OutgoingRequest) -> None:
    buffer += chunk
    if len(buffer) > MAX_RESPONSE_BYTES:
        raise ActionError(
            f"{request.describe()} returned more than {MAX_RESPONSE_BYTES // 1024 // 1024} MiB; "
            "call an endpoint with a smaller response"
        )


def make_reply(response: httpx.Response, content: bytes, latency: float) -> Reply:
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"  # the server named a charset Python does not know
    return Reply(
        status=response.status_code,
        headers=dict(response.headers.items()),
        content=content,
        encoding=encoding,
        latency=latency,
    )


def send_request(request: OutgoingRequest, *, timeout: float, ctx: ActionContext) -> Reply:
    """Send the request and read the whole body, raising ActionError on transport failures.

    `timeout` bounds each network operation and the request as a whole, which is checked
    with ctx.clock between body chunks. Cancellation is also checked between chunks.
    """
    if ctx.cancelled.is_set():
        raise ActionCancelledError(f"{request.describe()} was not sent: the step was cancelled")
    started = ctx.clock.monotonic()
    buffer = bytearray()
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                request.method, request.url, headers=request.headers, content=request.content
            ) as response,
        ):
            for chunk in response.iter_bytes():
                _check_progress(request, ctx, started, timeout)
                append_chunk(buffer, chunk, request)
    except TRANSPORT_ERRORS as e:
        raise transport_error(request, e, timeout) from None
    return make_reply(response, bytes(buffer), ctx.clock.monotonic() - started)


def _check_progress(
    request: OutgoingRequest, ctx: ActionContext, started: float, timeout: float
) -> None:
    if ctx.cancelled.is_set():
        raise ActionCancelledError(f"{request.describe()} was cancelled while reading the response")
    if ctx.clock.monotonic() - started > timeout:
        message = f"{request.describe()} timed out after {format_seconds(timeout)} reading the body"
        raise ActionError(message, temporary=True)


def check_request(params: HttpCheckParams, headers: dict[str, str]) -> OutgoingRequest:
    return OutgoingRequest(params.method, str(params.url), headers)


def evaluate_reply(params: HttpCheckParams, reply: Reply, now: datetime) -> CheckOutcome:
    """Compare a response with the check's status, latency and JSON conditions."""
    outcome = CheckOutcome()
    if reply.status not in params.expect_status:
        expected_text = " or ".join(str(code) for code in params.expect_status)
        outcome.failures.append(f"HTTP {reply.status}, expected {expected_text}")
        outcome.temporary = reply.status >= 500 or reply.status == 429
        outcome.quote_body = True
        if reply.status in (429, 503):
            outcome.retry_after = parse_retry_after(reply.headers.get("retry-after"), now)
    latency = format_seconds(reply.latency)
    if params.max_latency is not None and reply.latency > params.max_latency:
        limit = format_seconds(params.max_latency)
        outcome.failures.append(f"latency {latency} exceeds max_latency {limit}")
    elif params.warn_latency is not None and reply.latency > params.warn_latency:
        limit = format_seconds(params.warn_latency)
        outcome.warnings.append(f"latency {latency} exceeds warn_latency {limit}")
    _check_json(params.json_conditions, reply, outcome)
    return outcome


def _check_json(conditions: list[JsonCondition], reply: Reply, outcome: CheckOutcome) -> None:
    if not conditions:
        return
    document = reply.parse_json()
    if document is _NO_JSON:
        count = len(conditions)
        noun = "condition" if count == 1 else "conditions"
        outcome.failures.append(
            f"response body is not JSON, so {count} JSON {noun} cannot be checked"
        )
        outcome.quote_body = True
        return
    for condition in conditions:
        sentence = evaluate(condition, document)
        if sentence is not None:
            outcome.failures.append(sentence)


def check_failure(
    request: OutgoingRequest, reply: Reply, outcome: CheckOutcome, outputs: Outputs
) -> ActionError:
    message = f"check {request.describe()} failed: {outcome.summary(reply)}"
    return ActionError(
        redact(message),
        temporary=outcome.temporary,
        retry_after=outcome.retry_after,
        outputs=outputs.model_dump(),
    )


def run_check(
    params: HttpCheckParams, headers: dict[str, str], ctx: ActionContext, *, timeout: float
) -> HttpCheckOutputs:
    """Send one check request and raise ActionError listing every failed condition."""
    request = check_request(params, headers)
    reply = send_request(request, timeout=timeout, ctx=ctx)
    outcome = evaluate_reply(params, reply, ctx.clock.now())
    outputs = HttpCheckOutputs(
        status=reply.status, latency=reply.latency, warnings=outcome.warnings
    )
    if outcome.failures:
        raise check_failure(request, reply, outcome, outputs)
    return outputs


def describe_conditions(params: HttpCheckParams) -> list[str]:
    expected = [f"status {' or '.join(str(code) for code in params.expect_status)}"]
    if params.max_latency is not None:
        expected.append(f"latency at most {format_seconds(params.max_latency)}")
    if params.warn_latency is not None:
        expected.append(f"warning above {format_seconds(params.warn_latency)}")
    expected += [condition.describe() for condition in params.json_conditions]
    return expected


def _request_body(params: HttpRequestParams) -> tuple[bytes | None, str | None]:
    """Return the encoded body and the Content-Type it implies."""
    if params.has_json:
        return json.dumps(params.json_body).encode(), "application/json"
    if params.body is not None:
        return params.body.encode(), None
    return None, None


def _plan_summary(
    method: str, url: str, body: str | None, headers: str, body_label: str = "body"
) -> str:
    summary = f"HTTP {method} {url}"
    extras = []
    if body is not None:
        # Redact before cutting, so that a cut cannot leave part of a secret visible.
        extras.append(f"{body_label} {shorten(redact(body), PLAN_BODY_LIMIT)}")
    if headers:
        extras.append(f"headers {headers}")
    if extras:
        summary += " with " + " and ".join(extras)
    return redact(summary)


def _plan_warnings(url: HttpUrl, secret_headers: Iterable[str]) -> list[str]:
    names = list(secret_headers)
    if url.scheme == "http" and names:
        return [f"secret headers {', '.join(names)} would be sent unencrypted over http"]
    return []


def _output_body(reply: Reply) -> tuple[str, bool]:
    encoded = reply.text().encode("utf-8")
    if len(encoded) <= OUTPUT_BODY_LIMIT:
        return encoded.decode("utf-8"), False
    return encoded[:OUTPUT_BODY_LIMIT].decode("utf-8", errors="ignore"), True


class HttpRequest(Action[HttpRequestParams, HttpRequestOutputs]):
    name: ClassVar[str] = "http.request"
    summary: ClassVar[str] = "Send one HTTP request and fail unless the status is expected."
    params_model: ClassVar[type[Params]] = HttpRequestParams
    outputs_model: ClassVar[type[Outputs]] = HttpRequestOutputs
    mutating: ClassVar[bool] = True
    idempotent: ClassVar[bool] = False

    def plan(self, params: HttpRequestParams, ctx: ActionContext) -> PlanResult:
        body = None
        if params.has_json:
            body = json.dumps(params.json_body)
        elif params.body is not None:
            body = params.body
        headers = describe_headers(params.headers, params.secret_headers)
        return PlanResult(
            summary=_plan_summary(params.method, str(params.url), body, headers),
            target=target_of(params.url),
            mutating=params.method not in SAFE_METHODS,
            warnings=_plan_warnings(params.url, params.secret_headers),
        )

    def run(self, params: HttpRequestParams, ctx: ActionContext) -> HttpRequestOutputs:
        headers = resolve_headers(params, ctx.config.base_dir)
        content, content_type = _request_body(params)
        if content_type and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        request = OutgoingRequest(params.method, str(params.url), headers, content)
        reply = send_request(request, timeout=ctx.timeout, ctx=ctx)
        error = status_error(request, reply, params.expect_status, ctx.clock.now())
        if error is not None:
            raise error
        body, truncated = _output_body(reply)
        document = reply.parse_json()
        return HttpRequestOutputs(
            status=reply.status,
            headers=REDACTOR.redact_data(reply.headers),
            body=body,
            body_truncated=truncated,
            json_body=None if document is _NO_JSON else REDACTOR.redact_data(document),
            elapsed=reply.latency,
        )


class HttpCheck(Action[HttpCheckParams, HttpCheckOutputs]):
    name: ClassVar[str] = "http.check"
    summary: ClassVar[str] = "Check an HTTP endpoint's status, latency and JSON fields."
    params_model: ClassVar[type[Params]] = HttpCheckParams
    outputs_model: ClassVar[type[Outputs]] = HttpCheckOutputs
    mutating: ClassVar[bool] = False
    idempotent: ClassVar[bool] = True

    def plan(self, params: HttpCheckParams, ctx: ActionContext) -> PlanResult:
        headers = describe_headers(params.headers, params.secret_headers)
        request = _plan_summary(params.method, str(params.url), None, headers)
        return PlanResult(
            summary=f"check {request}, expecting {', '.join(describe_conditions(params))}",
            target=target_of(params.url),
            warnings=_plan_warnings(params.url, params.secret_headers),
        )

    def run(self, params: HttpCheckParams, ctx: ActionContext) -> HttpCheckOutputs:
        headers = resolve_headers(params, ctx.config.base_dir)
        return run_check(params, headers, ctx, timeout=ctx.timeout)


class NotifyWebhook(Action[NotifyWebhookParams, NotifyWebhookOutputs]):
    name: ClassVar[str] = "notify.webhook"
    summary: ClassVar[str] = "POST a JSON payload to a webhook."
    params_model: ClassVar[type[Params]] = NotifyWebhookParams
    outputs_model: ClassVar[type[Outputs]] = NotifyWebhookOutputs
    mutating: ClassVar[bool] = True
    idempotent: ClassVar[bool] = False

    def plan(self, params: NotifyWebhookParams, ctx: ActionContext) -> PlanResult:
        headers = describe_headers(params.headers, params.secret_headers)
        payload = json.dumps(params.payload)
        return PlanResult(
            summary=_plan_summary("POST", str(params.url), payload, headers, "payload"),
            target=target_of(params.url),
            mutating=True,
            warnings=_plan_warnings(params.url, params.secret_headers),
        )

    def run(self, params: NotifyWebhookParams, ctx: ActionContext) -> NotifyWebhookOutputs:
        headers = resolve_headers(params, ctx.config.base_dir)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        content = json.dumps(params.payload).encode()
        request = OutgoingRequest("POST", str(params.url), headers, content)
        reply = send_request(request, timeout=ctx.timeout, ctx=ctx)
        error = status_error(request, reply, None, ctx.clock.now())
        if error is not None:
            raise error
        return NotifyWebhookOutputs(status=reply.status)
