"""Delivery of incident notifications over the configured channels: Slack, webhook, email, PagerDuty.

`deliver` sends one notification to one contact over one channel and retries temporary
failures: connection errors, timeouts, HTTP 429 and 5xx, and SMTP 4xx replies. `dispatch`
tries a contact's channels in order until one succeeds. Secrets are resolved, and so
registered with the redactor, just before sending, and every error message of this module
passes through the redactor.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from breakglass.actions.http import format_seconds
from breakglass.config.channels import (
    Channel,
    ChannelMap,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    is_email_address,
)
from breakglass.config.incidents import Contact, Severity
from breakglass.config.redaction import MASK, MIN_SECRET_LENGTH, REDACTOR, redact
from breakglass.config.secrets import resolve_secret
from breakglass.errors import SecretError

log = logging.getLogger(__name__)

# Seconds before the first retry of a delivery; each later retry waits twice as long.
BACKOFF_SECONDS = 0.5
DEDUP_HEADER = "X-Breakglass-Dedup-Key"
PAGERDUTY_SOURCE = "breakglass"
# Limits of payload.summary and dedup_key in the PagerDuty Events API v2
# (developer.pagerduty.com, "Send an Alert Event").
PAGERDUTY_SUMMARY_LIMIT = 1024
PAGERDUTY_DEDUP_KEY_LIMIT = 255
PAGERDUTY_SEVERITY = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.P2: "warning",
    Severity.P3: "info",
}
RESPONSE_LIMIT = 64 * 1024  # bytes of a response body read; the rest is not needed
ERROR_BODY_LIMIT = 300  # characters of a response body quoted in an error message


def _one_line(value: str) -> str:
    # Titles and summaries go into an email Subject and a Slack heading, where a line
    # break would start a new header or break the layout.
    return " ".join(value.split())


OneLine = Annotated[str, AfterValidator(_one_line)]


class Notification(BaseModel):
    """One page or notice about an incident, ready to send to a contact.

    Line breaks in the one-line fields are replaced by spaces.
    """

    model_config = ConfigDict(extra="forbid")

    dedup_key: str = Field(
        min_length=1,
        max_length=PAGERDUTY_DEDUP_KEY_LIMIT,
        pattern=r"^\S+$",
        description="Deduplication key, for example INC-20261204-001:2:page.",
    )
    kind: Literal["page", "notify"] = Field(
        description="A page wakes someone, and a notify only informs."
    )
    incident_id: OneLine
    title: OneLine
    severity: Severity
    status: OneLine
    level: int | None = Field(default=None, description="Escalation level, when one is paged.")
    summary: OneLine
    details: dict[str, str] = Field(
        default_factory=dict, description="Extra lines, such as deadlines, by label."
    )
    resent: bool = Field(
        default=False,
        description="Sent again after an interrupted delivery, with the same dedup_key.",
    )

    @property
    def label(self) -> str:
        """Return the severity and kind, for example `P0 page`."""
        return f"{self.severity} {self.kind}"


class ChannelError(Exception):
    """A notification that could not be delivered. `temporary` means a later retry may succeed."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary

    def __str__(self) -> str:
        return self.message


# -- one delivery -----------------------------------------------------------------------------


def deliver(
    name: str, channel: Channel, contact: Contact, notification: Notification, *, base_dir: Path
) -> str:
    """Send one notification to one contact over one channel and return a delivery detail.

    Every network operation gets the channel's timeout. Temporary failures are retried up to
    `channel.retries` times, after BACKOFF_SECONDS and then twice as long before each next
    retry. Raises ChannelError, naming the channel and the contact, after the last failed
    attempt or on a permanent failure.
    `base_dir` resolves relative `file:` secret references.
    """
    where = f"{channel.kind} channel {name} to contact {contact.id}"
    attempts = channel.retries + 1
    try:
        send = _prepare(channel, contact, notification, base_dir)
    except ChannelError as e:
        raise ChannelError(redact(f"{where} failed: {e.message}"), temporary=e.temporary) from None
    return _with_retries(where, attempts, send)


def _with_retries(where: str, attempts: int, send: Callable[[], str]) -> str:
    """Call `send` until it succeeds, retrying temporary failures with a doubling backoff."""
    attempt = 1
    while True:
        try:
            detail = send()
        except ChannelError as e:
            if not e.temporary or attempt >= attempts:
                tried = f" ({attempt} attempts)" if attempt > 1 else ""
                message = redact(f"{where} failed{tried}: {e.message}")
                raise ChannelError(message, temporary=e.temporary) from None
            delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning(
                "%s: attempt %d of %d failed, retrying in %s: %s",
                where,
                attempt,
                attempts,
                format_seconds(delay),
                e.message,
            )
            time.sleep(delay)
            attempt += 1
        else:
            if attempt > 1:
                detail += f" ({attempt} attempts)"
            return redact(detail)


def _prepare(
    channel: Channel, contact: Contact, notification: Notification, base_dir: Path
) -> Callable[[], str]:
    """Resolve the channel's secrets, build its request and return the function that sends it."""
    if isinstance(channel, SlackChannel):
        url = _read_secret(channel.url, "url", base_dir)
        return _HttpPost(
            description=f"POST {_hide_slack_path(url)}",
            url=url,
            headers={},
            payload=slack_payload(contact, notification),
            timeout=channel.timeout,
            accepted=range(200, 300),
            dedup_key=notification.dedup_key,
        )
    if isinstance(channel, WebhookChannel):
        headers = dict(channel.headers)
        for header, reference in channel.secret_headers.items():
            headers[header] = _read_secret(reference, f"secret header {header}", base_dir)
        return _HttpPost(
            description=f"POST {channel.url}",
            url=str(channel.url),
            headers=headers,
            payload=webhook_payload(contact, notification),
            timeout=channel.timeout,
            accepted=range(200, 300),
            dedup_key=notification.dedup_key,
        )
    if isinstance(channel, PagerDutyChannel):
        routing_key = _read_secret(channel.routing_key, "routing_key", base_dir)
        # The Events API v2 returns 202 Accepted. Any other status, 200 included, means the
        # endpoint is not the Events API, so the event is not taken as delivered.
        return _HttpPost(
            description=f"POST {channel.endpoint}",
            url=str(channel.endpoint),
            headers={},
            payload=pagerduty_payload(routing_key, contact, notification),
            timeout=channel.timeout,
            accepted=range(202, 203),
            dedup_key=notification.dedup_key,
        )
    return _prepare_email(channel, contact, notification, base_dir)


def close_pagerduty(
    name: str,
    channel: PagerDutyChannel,
    dedup_key: str,
    action: Literal["acknowledge", "resolve"],
    *,
    base_dir: Path,
) -> str:
    """Send an acknowledge or resolve event for an earlier trigger, so PagerDuty stops paging."""
    where = f"pagerduty channel {name} ({action} {dedup_key})"
    routing_key = _read_secret(channel.routing_key, "routing_key", base_dir)
    send = _HttpPost(
        description=f"POST {channel.endpoint}",
        url=str(channel.endpoint),
        headers={},
        payload={"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key},
        timeout=channel.timeout,
        accepted=range(202, 203),
        dedup_key=dedup_key,
    )
    return _with_retries(where, channel.retries + 1, send)


def _read_secret(reference: str, field: str, base_dir: Path) -> str:
    try:
        return resolve_secret(reference, base_dir=base_dir)
    except SecretError as e:
        hint = f" ({e.hint})" if e.hint else ""
        raise ChannelError(f"cannot read {field}: {e.message}{hint}") from None


def _hide_slack_path(url: str) -> str:
    """Register the URL's path with the redactor and return the URL with the path masked.

    The path of an incoming-webhook URL is its credential, and an error message may quote
    the path without the rest of the URL.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ChannelError(
            "the Slack webhook URL that url references is invalid; write the whole URL, "
            "https://hooks.slack.com/services/..."
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ChannelError(
            "the Slack webhook URL that url references is not an http or https URL; "
            "write the whole URL, https://hooks.slack.com/services/..."
        )
    secret_part = parsed.raw_path.decode("ascii")
    if len(secret_part) >= MIN_SECRET_LENGTH:
        REDACTOR.register(secret_part)
        REDACTOR.register(parsed.path)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}/{MASK}"


# -- payloads ---------------------------------------------------------------------------------


def slack_payload(contact: Contact, notification: Notification) -> dict[str, Any]:
    """Build a Slack incoming-webhook message: a heading, the summary and the details."""
    heading = f"*[{notification.label}]* {_slack_escape(notification.incident_id)}: "
    heading += _slack_escape(notification.title)
    mention = _slack_mention(contact.chat)
    if mention:
        heading = f"{mention} {heading}"
    lines = [heading, _slack_escape(notification.summary)]
    lines += [
        f"• {_slack_escape(label)}: {_slack_escape(value)}"
        for label, value in notification.details.items()
    ]
    if notification.resent:
        lines.append("_Sent again after an interrupted delivery._")
    return {"text": "\n".join(lines)}


def _slack_escape(text: str) -> str:
    # Slack parses &, < and > as control characters in message text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_mention(chat: str | None) -> str:
    """Return the chat handle as a Slack mention, `<@MEMBER_ID>`, when it is a member ID.

    Slack writes user mentions as `<@MEMBER_ID>` (api.slack.com/reference/surfaces/formatting).
    Any other handle, such as @alice, is sent as escaped text, which may notify nobody.
    """
    if not chat:
        return ""
    if chat.startswith(("<@", "<!")) and chat.endswith(">"):
        return chat
    member_id = chat.removeprefix("@")
    if member_id[:1] in ("U", "W") and member_id.isalnum() and member_id.isupper():
        return f"<@{member_id}>"
    return _slack_escape(chat)


def webhook_payload(contact: Contact, notification: Notification) -> dict[str, Any]:
    return {
        "dedup_key": notification.dedup_key,
        "kind": notification.kind,
        "incident": {
            "id": notification.incident_id,
            "title": notification.title,
            "severity": str(notification.severity),
            "status": notification.status,
            "level": notification.level,
        },
        "contact": {"id": contact.id, "name": contact.name},
        "summary": notification.summary,
        "details": notification.details,
    }


def pagerduty_payload(
    routing_key: str, contact: Contact, notification: Notification
) -> dict[str, Any]:
    """Build a PagerDuty Events API v2 trigger event.

    NOTE: a notify is sent as a trigger too, so whether it wakes someone depends on the
    urgency settings of the PagerDuty service, not on breakglass.
    """
    summary = notification.summary
    if len(summary) > PAGERDUTY_SUMMARY_LIMIT:
        summary = summary[: PAGERDUTY_SUMMARY_LIMIT - 1] + "…"
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notification.dedup_key,
        "payload": {
            "summary": summary,
            "source": PAGERDUTY_SOURCE,
            "severity": PAGERDUTY_SEVERITY[notification.severity],
            "custom_details": {
                "incident": notification.incident_id,
                "title": notification.title,
                "status": notification.status,
                "escalation_level": notification.level,
                "notification": notification.kind,
                "contact": contact.id,
                "resent": notification.resent,
                "details": notification.details,
            },
        },
    }


def email_message(
    sender: str, recipient: str, contact: Contact, notification: Notification
) -> EmailMessage:
    """Build the plain-text email, with the dedup key in the X-Breakglass-Dedup-Key header."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"[{notification.label}] {notification.incident_id}: {notification.title}"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message[DEDUP_HEADER] = notification.dedup_key
    lines = [
        f"{contact.name},",
        "",
        notification.summary,
        "",
        f"Incident: {notification.incident_id}",
        f"Title: {notification.title}",
        f"Severity: {notification.severity}",
        f"Status: {notification.status}",
    ]
    if notification.level is not None:
        lines.append(f"Escalation level: {notification.level}")
    lines += [f"{label}: {value}" for label, value in notification.details.items()]
    lines += ["", f"Deduplication key: {notification.dedup_key}"]
    if notification.resent:
        lines.append("This is sent again after an interrupted delivery.")
    message.set_content("\n".join(lines) + "\n")
    return message


# -- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _HttpPost:
    """A JSON POST ready to send. `url`, `headers` and `payload` may contain secrets."""

    description: str  # method and URL without secrets, for messages
    url: str
    headers: dict[str, str]
    payload: dict[str, Any]
    timeout: float
    accepted: range
    dedup_key: str

    def __call__(self) -> str:
        headers = {"Content-Type": "application/json", **self.headers}
        content = json.dumps(self.payload).encode()
        body = bytearray()
        started = time.monotonic()
        try:
            # Redirects are not followed, because a 307 or 308 would send the secret headers
            # and the routing key again, to another host.
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("POST", self.url, headers=headers, content=content) as response,
            ):
                for chunk in response.iter_bytes():
                    body += chunk
                    # The status is known by now and only an excerpt of the body is quoted,
                    # so a large or slowly sent body is cut rather than waited for.
                    if len(body) >= RESPONSE_LIMIT or time.monotonic() - started > 2 * self.timeout:
                        break
        except httpx.TimeoutException as e:
            message = f"{self.description} timed out after {format_seconds(self.timeout)} ({type(e).__name__})"
            raise ChannelError(message, temporary=True) from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL):
            # The exception text can quote header values, so it is not repeated here.
            message = f"{self.description} is invalid and was not sent; check the URL and the header values"
            raise ChannelError(message) from None
        except UnicodeEncodeError:
            raise ChannelError(
                f"{self.description} was not sent: header values must be ASCII"
            ) from None
        except httpx.TransportError as e:
            detail = str(e) or "no details"
            message = f"{self.description} failed: {type(e).__name__}: {detail}"
            raise ChannelError(redact(message), temporary=True) from None
        status = response.status_code
        if status in self.accepted:
            return f"HTTP {status}, dedup_key {self.dedup_key}"
        raise self._status_error(status, bytes(body), response.charset_encoding)

    def _status_error(self, status: int, body: bytes, encoding: str | None) -> ChannelError:
        expected = "2xx" if len(self.accepted) > 1 else str(self.accepted[0])
        message = f"{self.description} returned HTTP {status}, expected {expected}"
        if 300 <= status < 400:
            message += "; redirects are not followed, so configure the final URL"
        text = redact(body.decode(encoding or "utf-8", errors="replace")).strip()
        if len(text) > ERROR_BODY_LIMIT:
            text = text[:ERROR_BODY_LIMIT] + "…"
        if text:
            message += f"; response body: {text}"
        return ChannelError(redact(message), temporary=status >= 500 or status == 429)


# -- email ------------------------------------------------------------------------------------


def _prepare_email(
    channel: EmailChannel, contact: Contact, notification: Notification, base_dir: Path
) -> Callable[[], str]:
    if not contact.email:
        raise ChannelError("the contact has no email address; add email to the contact")
    if not is_email_address(contact.email):
        raise ChannelError(
            f"the contact's email {contact.email!r} is not a plain address such as alice@example.com"
        )
    recipient = contact.email
    password = None
    if channel.password is not None:
        password = _read_secret(channel.password, "password", base_dir)
    message = email_message(channel.sender, recipient, contact, notification)

    def send() -> str:
        _send_email(channel, password, message, recipient)
        return f"SMTP {channel.host}:{channel.port} accepted the email to {recipient}, dedup_key {notification.dedup_key}"

    return send


def _send_email(
    channel: EmailChannel, password: str | None, message: EmailMessage, recipient: str
) -> None:
    """Send the message, raising ChannelError for every SMTP, TLS and socket failure.

    SMTP 4xx replies, timeouts and lost connections are temporary; 5xx replies, a rejected
    login and a failed TLS handshake are permanent.
    """
    server = f"SMTP {channel.host}:{channel.port}"
    try:
        # `timeout` is the socket timeout, so it bounds the connect and every later command.
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username is not None and password is not None:
                smtp.login(channel.username, password)
            smtp.send_message(message, from_addr=channel.sender, to_addrs=[recipient])
    except smtplib.SMTPNotSupportedError as e:
        hint = ""
        if channel.starttls and "STARTTLS" in str(e):
            hint = (
                "; use a server that offers STARTTLS, or set starttls: false on a trusted network"
            )
        raise ChannelError(redact(f"{server} failed: {e}{hint}")) from None
    except smtplib.SMTPAuthenticationError as e:
        reply = _smtp_reply(e.smtp_code, e.smtp_error)
        message_text = f"{server} rejected the login as {channel.username}: {reply}"
        raise ChannelError(redact(message_text)) from None
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients.get(recipient, (550, b"refused"))
        message_text = f"{server} refused the recipient {recipient}: {_smtp_reply(code, text)}"
        raise ChannelError(redact(message_text), temporary=400 <= code < 500) from None
    except smtplib.SMTPResponseException as e:
        reply = _smtp_reply(e.smtp_code, e.smtp_error)
        temporary = 400 <= e.smtp_code < 500
        raise ChannelError(redact(f"{server} failed: {reply}"), temporary=temporary) from None
    except smtplib.SMTPServerDisconnected as e:
        # smtplib turns a socket timeout while reading a reply into SMTPServerDisconnected.
        if isinstance(e.__context__, TimeoutError):
            message_text = f"{server} timed out after {format_seconds(channel.timeout)}"
            raise ChannelError(message_text, temporary=True) from None
        detail = str(e) or "no details"
        raise ChannelError(
            redact(f"{server} closed the connection: {detail}"), temporary=True
        ) from None
    except smtplib.SMTPException as e:
        raise ChannelError(redact(f"{server} failed: {type(e).__name__}: {e}")) from None
    except ssl.SSLError as e:
        message_text = (
            f"{server} failed the TLS handshake: {e.reason or e}; check the server certificate"
        )
        raise ChannelError(redact(message_text)) from None
    except TimeoutError:
        message_text = f"{server} timed out after {format_seconds(channel.timeout)}"
        raise ChannelError(message_text, temporary=True) from None
    except OSError as e:
        detail = e.strerror or str(e) or type(e).__name__
        raise ChannelError(redact(f"{server} failed: {detail}"), temporary=True) from None


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(text.split())}"


# -- a contact's channels ---------------------------------------------------------------------


def dispatch(
    channels: ChannelMap,
    contact: Contact,
    notification: Notification,
    *,
    base_dir: Path,
    on_attempt: Callable[[str, str | None, str | None], None] | None = None,
) -> tuple[str, str]:
    """Send the notification over the contact's channels in order, until one succeeds.

    Calls `on_attempt(channel_name, detail, error)` after each channel, with either the
    delivery detail or the error message. Returns the name of the channel that succeeded and
    its detail. Raises ChannelError naming every failed channel when all fail or the contact
    has none; it is temporary when any channel failed temporarily.
    """
    if not contact.channels:
        raise ChannelError(
            f"contact {contact.id} has no notification channels; "
            "list channels for the contact in the config"
        )
    failures: list[str] = []
    temporary = False
    for name in contact.channels:
        channel = channels.get(name)
        try:
            if channel is None:
                raise ChannelError(
                    f"channel {name} of contact {contact.id} is not configured; "
                    "add it under channels in the config"
                )
            detail = deliver(name, channel, contact, notification, base_dir=base_dir)
        except ChannelError as e:
            failures.append(e.message)
            temporary = temporary or e.temporary
            log.warning("%s %s: %s", notification.label, notification.dedup_key, e.message)
            if on_attempt is not None:
                on_attempt(name, None, e.message)
            continue
        log.info(
            "%s %s sent to %s via %s: %s",
            notification.label,
            notification.dedup_key,
            contact.id,
            name,
            detail,
        )
        if on_attempt is not None:
            on_attempt(name, detail, None)
        return name, detail
    count = len(failures)
    noun = "channel" if count == 1 else "channels"
    message = (
        f"{notification.kind} {notification.dedup_key} to contact {contact.id} failed on "
        f"{count} {noun}: {'; '.join(failures)}"
    )
    raise ChannelError(message, temporary=temporary)
