"""Notification channels against real peers on 127.0.0.1: an HTTP server and an SMTP server.

No test sends to the PagerDuty default endpoint: every PagerDuty channel sets `endpoint`
to the local server.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pydantic import TypeAdapter, ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from breakglass.config.channels import Channel, ChannelMap
from breakglass.config.incidents import Contact
from breakglass.incidents import channels
from breakglass.incidents.channels import ChannelError, Notification, deliver, dispatch
from tests.fakes import Hang, closed_port

ROUTING_KEY = "R0UTING-KEY-pagerduty-0123456789"
SLACK_PATH = "/services/T0000/B0000/slack-webhook-token-0123456789"
SMTP_PASSWORD = "smtp-pa55word-0123456789"
WEBHOOK_TOKEN = "Bearer webhook-token-0123456789"
DEDUP_KEY = "INC-20261204-001:2:page"
SUMMARY = "P0 INC-20261204-001 needs a response: Payments API down (incident opened)"
DETAILS = {"response": "due 10:45 UTC, in 12m", "services": "payments-api"}
PD_ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": DEDUP_KEY}

CHANNEL = TypeAdapter(Channel)
CHANNEL_MAP = TypeAdapter(ChannelMap)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channels, "BACKOFF_SECONDS", 0.01)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, server: HTTPServer) -> None:
    monkeypatch.setenv("PD_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("SLACK_URL", server.url_for(SLACK_PATH))
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)


def make_channel(**raw: Any) -> Channel:
    return CHANNEL.validate_python(raw)


def pagerduty(server: HTTPServer, **raw: Any) -> Channel:
    settings = {
        "kind": "pagerduty",
        "routing_key": "env:PD_ROUTING_KEY",
        "endpoint": server.url_for("/v2/enqueue"),
        "timeout": "2s",
        **raw,
    }
    return make_channel(**settings)


def slack(**raw: Any) -> Channel:
    return make_channel(kind="slack", url="env:SLACK_URL", timeout="2s", **raw)


def make_notification(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "dedup_key": DEDUP_KEY,
        "kind": "page",
        "incident_id": "INC-20261204-001",
        "title": "Payments API down",
        "severity": "P0",
        "status": "investigating",
        "level": 2,
        "summary": SUMMARY,
        "details": DETAILS,
    }
    fields.update(changes)
    return Notification.model_validate(fields)


def make_contact(**changes: Any) -> Contact:
    fields: dict[str, Any] = {
        "id": "alice",
        "name": "Alice Example",
        "email": "alice@example.com",
        "chat": "U024BE7LH",
        "channels": ["pagerduty"],
    }
    fields.update(changes)
    return Contact.model_validate(fields)


def send(channel: Channel, tmp_path: Path, **contact: Any) -> str:
    return deliver("main", channel, make_contact(**contact), make_notification(), base_dir=tmp_path)


def send_error(channel: Channel, tmp_path: Path, **contact: Any) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        send(channel, tmp_path, **contact)
    return caught.value


def posted_json(server: HTTPServer, index: int = 0) -> Any:
    request, _ = server.log[index]
    return json.loads(request.get_data())


def scripted(*responses: Response) -> Any:
    """Return a handler that returns `responses` in order, one per request."""
    queue = list(responses)

    def handler(request: Request) -> Response:
        return queue.pop(0)

    return handler


def assert_no_secret(text: str) -> None:
    for secret in (ROUTING_KEY, SLACK_PATH, "slack-webhook-token", SMTP_PASSWORD, WEBHOOK_TOKEN):
        assert secret not in text


# -- config -----------------------------------------------------------------------------------


def test_channel_defaults() -> None:
    configured = CHANNEL_MAP.validate_python(
        {
            "pd": {"kind": "pagerduty", "routing_key": "env:PD_ROUTING_KEY"},
            "mail": {"kind": "email", "host": "smtp.example.com", "sender": "bg@example.com"},
        }
    )

    pd = configured["pd"]
    mail = configured["mail"]
    assert pd.kind == "pagerduty"
    assert str(pd.endpoint) == "https://events.pagerduty.com/v2/enqueue"
    assert pd.timeout == 10.0
    assert pd.retries == 2
    assert mail.kind == "email"
    assert mail.port == 587
    assert mail.starttls is True
    assert mail.username is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"kind": "sms", "url": "env:X"}, "does not match any of the expected tags"),
        ({"kind": "slack", "url": "https://hooks.slack.com/services/x"}, "secret reference"),
        ({"kind": "slack", "url": "env:X", "retries": 6}, "less than or equal to 5"),
        ({"kind": "slack", "url": "env:X", "retries": -1}, "greater than or equal to 0"),
        ({"kind": "slack", "url": "env:X", "timeout": 5}, "has no unit"),
        ({"kind": "slack", "url": "env:X", "timeout": "0s"}, "must be more than zero"),
        ({"kind": "slack", "url": "env:X", "channel": "#ops"}, "Extra inputs"),
        ({"kind": "webhook", "url": "ftp://127.0.0.1/x"}, "URL scheme should be"),
        (
            {"kind": "webhook", "url": "http://127.0.0.1/x", "headers": {"bad name": "x"}},
            "invalid header name",
        ),
        (
            {
                "kind": "webhook",
                "url": "http://127.0.0.1/x",
                "headers": {"authorization": "x"},
                "secret_headers": {"Authorization": "env:X"},
            },
            "set in both headers and secret_headers",
        ),
        ({"kind": "email", "host": "smtp.example.com", "sender": "nobody"}, "invalid sender"),
        (
            {"kind": "email", "host": "smtp.example.com", "sender": "a@example.com", "port": 0},
            "greater than or equal to 1",
        ),
        (
            {
                "kind": "email",
                "host": "smtp.example.com",
                "sender": "a@example.com",
                "username": "bg",
            },
            "set both username and password",
        ),
        ({"kind": "email", "host": "smtp example", "sender": "a@example.com"}, "invalid SMTP host"),
        ({"kind": "pagerduty", "routing_key": "R0UTING"}, "secret reference"),
    ],
)
def test_channel_rejects_invalid(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CHANNEL.validate_python(raw)

    assert expected in str(caught.value)


def test_channel_map_rejects_bad_name() -> None:
    with pytest.raises(ValidationError) as caught:
        CHANNEL_MAP.validate_python({"on call": {"kind": "slack", "url": "env:X"}})

    assert "channel name 'on call'" in str(caught.value)


def test_notification_joins_lines() -> None:
    notification = make_notification(title="Payments\r\nAPI down", summary="line one\nline two")

    assert notification.title == "Payments API down"
    assert notification.summary == "line one line two"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"dedup_key": "INC-1 page"}, "should match pattern"),
        ({"dedup_key": ""}, "at least 1 character"),
        ({"dedup_key": "k" * 256}, "at most 255 characters"),
        ({"severity": "P5"}, "Input should be 'P0', 'P1', 'P2' or 'P3'"),
        ({"kind": "sms"}, "Input should be 'page' or 'notify'"),
    ],
)
def test_notification_rejects_invalid(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_notification(**changes)

    assert expected in str(caught.value)


# -- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_sends_trigger_event(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue", method="POST").respond_with_json(PD_ACCEPTED, status=202)

    detail = send(pagerduty(server), tmp_path)

    assert detail == f"HTTP 202, dedup_key {DEDUP_KEY}"
    assert len(server.log) == 1
    request, _ = server.log[0]
    assert request.headers["Content-Type"] == "application/json"
    assert posted_json(server) == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": DEDUP_KEY,
        "payload": {
            "summary": SUMMARY,
            "source": "breakglass",
            "severity": "critical",
            "custom_details": {
                "incident": "INC-20261204-001",
                "title": "Payments API down",
                "status": "investigating",
                "escalation_level": 2,
                "notification": "page",
                "contact": "alice",
                "resent": False,
                "details": DETAILS,
            },
        },
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("P0", "critical"), ("P1", "error"), ("P2", "warning"), ("P3", "info")],
)
def test_pagerduty_severity_mapping(
    server: HTTPServer, tmp_path: Path, secrets: None, severity: str, expected: str
) -> None:
    server.expect_request("/v2/enqueue").respond_with_json(PD_ACCEPTED, status=202)
    notification = make_notification(severity=severity)

    deliver("pd", pagerduty(server), make_contact(), notification, base_dir=tmp_path)

    assert posted_json(server)["payload"]["severity"] == expected


def test_pagerduty_summary_cut(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_json(PD_ACCEPTED, status=202)
    notification = make_notification(summary="x" * 2000)

    deliver("pd", pagerduty(server), make_contact(), notification, base_dir=tmp_path)

    summary = posted_json(server)["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")


def test_pagerduty_400_not_retried(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    # The body echoes the routing key, as an error page might, to check that it is masked.
    body = {"status": "invalid event", "errors": [f"routing_key {ROUTING_KEY} is invalid"]}
    server.expect_request("/v2/enqueue").respond_with_json(body, status=400)

    error = send_error(pagerduty(server, retries=3), tmp_path)

    assert len(server.log) == 1
    assert error.temporary is False
    assert error.message.startswith("pagerduty channel main to contact alice failed: POST ")
    assert "returned HTTP 400, expected 202" in error.message
    assert "routing_key *** is invalid" in error.message
    assert "attempts" not in error.message
    assert_no_secret(error.message)


def test_pagerduty_500_then_202_retried(
    server: HTTPServer, tmp_path: Path, secrets: None, caplog: pytest.LogCaptureFixture
) -> None:
    server.expect_request("/v2/enqueue").respond_with_handler(
        scripted(
            Response("upstream down", status=500),
            Response("busy", status=429),
            Response(json.dumps(PD_ACCEPTED), status=202, content_type="application/json"),
        )
    )

    with caplog.at_level(logging.WARNING, logger="breakglass.incidents.channels"):
        detail = send(pagerduty(server, retries=2), tmp_path)

    assert detail == f"HTTP 202, dedup_key {DEDUP_KEY} (3 attempts)"
    assert len(server.log) == 3
    assert posted_json(server, 0) == posted_json(server, 2)
    retries = [record.getMessage() for record in caplog.records]
    assert len(retries) == 2
    assert "attempt 1 of 3 failed, retrying in 10ms" in retries[0]
    assert "HTTP 500" in retries[0]
    assert "attempt 2 of 3 failed, retrying in 20ms" in retries[1]
    assert "HTTP 429" in retries[1]


def test_pagerduty_5xx_gives_up(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_data("down", status=503)

    error = send_error(pagerduty(server, retries=1), tmp_path)

    assert len(server.log) == 2
    assert error.temporary is True
    assert "failed (2 attempts)" in error.message
    assert "returned HTTP 503, expected 202; response body: down" in error.message


def test_pagerduty_rejects_200(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_data("<html>a login page</html>")

    error = send_error(pagerduty(server), tmp_path)

    assert len(server.log) == 1
    assert error.temporary is False
    assert "returned HTTP 200, expected 202" in error.message


def test_pagerduty_missing_secret(
    server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_ROUTING_KEY", raising=False)

    error = send_error(pagerduty(server), tmp_path)

    assert server.log == []
    assert error.temporary is False
    assert error.message == (
        "pagerduty channel main to contact alice failed: cannot read routing_key: "
        "secret reference env:PD_ROUTING_KEY: environment variable PD_ROUTING_KEY is not set "
        "(export PD_ROUTING_KEY before running breakglass)"
    )


def test_pagerduty_key_from_file(server: HTTPServer, tmp_path: Path) -> None:
    (tmp_path / "pd.key").write_text(ROUTING_KEY + "\n", encoding="utf-8")
    server.expect_request("/v2/enqueue").respond_with_json(PD_ACCEPTED, status=202)

    send(pagerduty(server, routing_key="file:pd.key"), tmp_path)

    assert posted_json(server)["routing_key"] == ROUTING_KEY


def test_redirect_not_followed(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_data(
        "", status=302, headers={"Location": server.url_for("/elsewhere")}
    )

    error = send_error(pagerduty(server), tmp_path)

    assert len(server.log) == 1
    assert error.temporary is False
    assert "redirects are not followed" in error.message


# -- Slack ------------------------------------------------------------------------------------


def test_slack_posts_text(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request(SLACK_PATH, method="POST").respond_with_data("ok")

    detail = send(slack(), tmp_path)

    assert detail == f"HTTP 200, dedup_key {DEDUP_KEY}"
    assert posted_json(server) == {
        "text": (
            "<@U024BE7LH> *[P0 page]* INC-20261204-001: Payments API down\n"
            f"{SUMMARY}\n"
            "• response: due 10:45 UTC, in 12m\n"
            "• services: payments-api"
        )
    }
    assert_no_secret(detail)


@pytest.mark.parametrize(
    ("chat", "expected"),
    [
        ("@U024BE7LH", "<@U024BE7LH> "),
        ("<@W0123ABCD>", "<@W0123ABCD> "),
        ("@alice", "@alice "),
        (None, ""),
    ],
)
def test_slack_mention(
    server: HTTPServer, tmp_path: Path, secrets: None, chat: str | None, expected: str
) -> None:
    server.expect_request(SLACK_PATH).respond_with_data("ok")

    send(slack(), tmp_path, chat=chat)

    assert posted_json(server)["text"].startswith(f"{expected}*[P0 page]*")


def test_slack_escapes_and_marks_resent(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request(SLACK_PATH).respond_with_data("ok")
    notification = make_notification(
        kind="notify", title="<b> & co", summary="a > b", details={}, resent=True
    )

    deliver("main", slack(), make_contact(chat=None), notification, base_dir=tmp_path)

    assert posted_json(server) == {
        "text": (
            "*[P0 notify]* INC-20261204-001: &lt;b&gt; &amp; co\n"
            "a &gt; b\n"
            "_Sent again after an interrupted delivery._"
        )
    }


def test_slack_error_hides_url_path(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    # The server echoes the requested path, the credential of a Slack webhook URL.
    server.expect_request(SLACK_PATH).respond_with_handler(
        lambda request: Response(f"no_service for {request.path}", status=404)
    )

    error = send_error(slack(), tmp_path)

    assert error.temporary is False
    assert f"POST http://127.0.0.1:{server.port}/*** returned HTTP 404" in error.message
    assert "no_service for ***" in error.message
    assert_no_secret(error.message)


def test_slack_url_not_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", "hooks.slack.com/services/slack-webhook-token-0123456789")

    error = send_error(slack(), tmp_path)

    assert error.temporary is False
    assert "is not an http or https URL" in error.message
    assert_no_secret(error.message)


# -- generic webhook --------------------------------------------------------------------------


def test_webhook_posts_payload(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/hook", method="POST").respond_with_data("", status=204)
    channel = make_channel(
        kind="webhook",
        url=server.url_for("/hook"),
        headers={"X-Team": "payments"},
        secret_headers={"Authorization": "env:WEBHOOK_TOKEN"},
    )

    detail = send(channel, tmp_path)

    assert detail == f"HTTP 204, dedup_key {DEDUP_KEY}"
    request, _ = server.log[0]
    assert request.headers["X-Team"] == "payments"
    assert request.headers["Authorization"] == WEBHOOK_TOKEN
    assert posted_json(server) == {
        "dedup_key": DEDUP_KEY,
        "kind": "page",
        "incident": {
            "id": "INC-20261204-001",
            "title": "Payments API down",
            "severity": "P0",
            "status": "investigating",
            "level": 2,
        },
        "contact": {"id": "alice", "name": "Alice Example"},
        "summary": SUMMARY,
        "details": DETAILS,
    }
    assert_no_secret(detail)


def test_webhook_error_masks_secret_header(
    server: HTTPServer, tmp_path: Path, secrets: None
) -> None:
    server.expect_request("/hook").respond_with_handler(
        lambda request: Response(f"bad token {request.headers['Authorization']}", status=401)
    )
    channel = make_channel(
        kind="webhook",
        url=server.url_for("/hook"),
        secret_headers={"Authorization": "env:WEBHOOK_TOKEN"},
    )

    error = send_error(channel, tmp_path)

    assert len(server.log) == 1
    assert error.temporary is False
    assert "returned HTTP 401, expected 2xx; response body: bad token ***" in error.message
    assert_no_secret(error.message)


def test_webhook_timeout(server: HTTPServer, hang: Hang, tmp_path: Path) -> None:
    server.expect_request("/slow").respond_with_handler(hang)
    channel = make_channel(kind="webhook", url=server.url_for("/slow"), timeout="300ms", retries=0)

    started = time.monotonic()
    error = send_error(channel, tmp_path)
    elapsed = time.monotonic() - started

    assert elapsed < 3
    assert error.temporary is True
    assert f"POST {server.url_for('/slow')} timed out after 300ms" in error.message
    assert len(hang.requests) == 1


def test_connection_refused_retried(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    channel = make_channel(kind="webhook", url=url, timeout="1s", retries=1)

    error = send_error(channel, tmp_path)

    assert error.temporary is True
    assert error.message.startswith("webhook channel main to contact alice failed (2 attempts): ")
    assert "ConnectError" in error.message


# -- email ------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that stores each message, unless a scripted reply to DATA is queued."""

    envelopes: list[Envelope] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    data_commands: int = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.replies:
            return self.replies.pop(0)
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = auth_data.login == b"breakglass" and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        # handled=False makes aiosmtpd reply 535 to a failed login. With the default, it sends no reply.
        return AuthResult(success=ok, handled=False)

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].original_content
        assert content is not None
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpPeer:
    port: int
    inbox: Inbox


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    """A plain SMTP server on 127.0.0.1 that offers AUTH without TLS and no STARTTLS."""
    inbox = Inbox()
    port = closed_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield SmtpPeer(port, inbox)
    controller.stop()


def email_channel(port: int, **raw: Any) -> Channel:
    settings = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "sender": "breakglass@example.com",
        "timeout": "2s",
        **raw,
    }
    return make_channel(**settings)


def test_email_sent(smtp: SmtpPeer, tmp_path: Path, secrets: None) -> None:
    channel = email_channel(smtp.port, username="breakglass", password="env:SMTP_PASSWORD")

    detail = send(channel, tmp_path)

    assert detail == (
        f"SMTP 127.0.0.1:{smtp.port} accepted the email to alice@example.com, dedup_key {DEDUP_KEY}"
    )
    assert_no_secret(detail)
    assert smtp.inbox.logins == ["breakglass"]
    [envelope] = smtp.inbox.envelopes
    assert envelope.mail_from == "breakglass@example.com"
    assert envelope.rcpt_tos == ["alice@example.com"]
    message = smtp.inbox.message()
    assert message["To"] == "alice@example.com"
    assert message["From"] == "breakglass@example.com"
    assert message["Subject"] == "[P0 page] INC-20261204-001: Payments API down"
    assert message["X-Breakglass-Dedup-Key"] == DEDUP_KEY
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert SUMMARY in body
    assert "Status: investigating" in body
    assert "Escalation level: 2" in body
    assert "response: due 10:45 UTC, in 12m" in body
    assert "services: payments-api" in body
    assert f"Deduplication key: {DEDUP_KEY}" in body


def test_email_without_login(smtp: SmtpPeer, tmp_path: Path) -> None:
    send(email_channel(smtp.port), tmp_path)

    assert smtp.inbox.logins == []
    assert len(smtp.inbox.envelopes) == 1


def test_email_contact_without_address(smtp: SmtpPeer, tmp_path: Path) -> None:
    error = send_error(email_channel(smtp.port), tmp_path, email=None)

    assert error.temporary is False
    assert error.message == (
        "email channel main to contact alice failed: the contact has no email address; "
        "add email to the contact"
    )
    assert smtp.inbox.data_commands == 0


def test_email_contact_address_invalid(smtp: SmtpPeer, tmp_path: Path) -> None:
    error = send_error(email_channel(smtp.port), tmp_path, email="alice@example.com\r\nBcc: x@y.z")

    assert error.temporary is False
    assert "is not a plain address" in error.message
    assert smtp.inbox.data_commands == 0


def test_email_wrong_password(
    smtp: SmtpPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-pa55word-0123456789"
    monkeypatch.setenv("SMTP_PASSWORD", wrong)
    channel = email_channel(smtp.port, username="breakglass", password="env:SMTP_PASSWORD")

    error = send_error(channel, tmp_path)

    assert error.temporary is False
    assert f"SMTP 127.0.0.1:{smtp.port} rejected the login as breakglass: 535" in error.message
    assert wrong not in error.message
    assert smtp.inbox.data_commands == 0


def test_email_starttls_not_offered(smtp: SmtpPeer, tmp_path: Path, secrets: None) -> None:
    channel = email_channel(
        smtp.port, starttls=True, username="breakglass", password="env:SMTP_PASSWORD"
    )

    error = send_error(channel, tmp_path)

    assert error.temporary is False
    assert "STARTTLS extension not supported by server" in error.message
    assert "set starttls: false on a trusted network" in error.message
    assert smtp.inbox.logins == []
    assert smtp.inbox.data_commands == 0


def test_email_4xx_retried(smtp: SmtpPeer, tmp_path: Path) -> None:
    smtp.inbox.replies = ["451 4.3.0 Try again later"]

    detail = send(email_channel(smtp.port, retries=1), tmp_path)

    assert detail.endswith("(2 attempts)")
    assert smtp.inbox.data_commands == 2
    assert len(smtp.inbox.envelopes) == 1


def test_email_5xx_not_retried(smtp: SmtpPeer, tmp_path: Path) -> None:
    smtp.inbox.replies = ["554 5.7.1 Message rejected"]

    error = send_error(email_channel(smtp.port, retries=2), tmp_path)

    assert error.temporary is False
    assert "554 5.7.1 Message rejected" in error.message
    assert smtp.inbox.data_commands == 1


def test_email_server_down(tmp_path: Path) -> None:
    error = send_error(email_channel(closed_port(), retries=0), tmp_path)

    assert error.temporary is True
    assert "Connection refused" in error.message


def test_email_timeout(tmp_path: Path) -> None:
    # A listening socket that never accepts: the connect succeeds, the greeting never comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]

        started = time.monotonic()
        error = send_error(email_channel(port, timeout="300ms", retries=0), tmp_path)
        elapsed = time.monotonic() - started

    assert elapsed < 3
    assert error.temporary is True
    assert error.message.endswith(f"SMTP 127.0.0.1:{port} timed out after 300ms")


# -- dispatch ---------------------------------------------------------------------------------


@dataclass
class Attempts:
    calls: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def __call__(self, channel: str, detail: str | None, error: str | None) -> None:
        self.calls.append((channel, detail, error))


def test_dispatch_moves_past_down_peer(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_json(PD_ACCEPTED, status=202)
    configured = {
        "down": make_channel(
            kind="webhook", url=f"http://127.0.0.1:{closed_port()}/hook", retries=0
        ),
        "pagerduty": pagerduty(server),
    }
    attempts = Attempts()

    name, detail = dispatch(
        configured,
        make_contact(channels=["down", "pagerduty"]),
        make_notification(),
        base_dir=tmp_path,
        on_attempt=attempts,
    )

    assert (name, detail) == ("pagerduty", f"HTTP 202, dedup_key {DEDUP_KEY}")
    assert len(attempts.calls) == 2
    down, sent = attempts.calls
    assert down[0] == "down"
    assert down[1] is None
    assert down[2] is not None
    assert down[2].startswith("webhook channel down to contact alice failed: POST ")
    assert "ConnectError" in down[2]
    assert sent == ("pagerduty", f"HTTP 202, dedup_key {DEDUP_KEY}", None)
    assert len(server.log) == 1


def test_dispatch_stops_at_first_success(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request(SLACK_PATH).respond_with_data("ok")
    configured = {"slack": slack(), "pagerduty": pagerduty(server)}
    attempts = Attempts()

    name, _ = dispatch(
        configured,
        make_contact(channels=["slack", "pagerduty"]),
        make_notification(),
        base_dir=tmp_path,
        on_attempt=attempts,
    )

    assert name == "slack"
    assert [call[0] for call in attempts.calls] == ["slack"]
    assert len(server.log) == 1


def test_dispatch_all_channels_fail(server: HTTPServer, tmp_path: Path, secrets: None) -> None:
    server.expect_request("/v2/enqueue").respond_with_data("bad", status=400)
    configured = {
        "down": make_channel(
            kind="webhook", url=f"http://127.0.0.1:{closed_port()}/hook", retries=0
        ),
        "pagerduty": pagerduty(server),
    }
    attempts = Attempts()

    with pytest.raises(ChannelError) as caught:
        dispatch(
            configured,
            make_contact(channels=["down", "missing", "pagerduty"]),
            make_notification(),
            base_dir=tmp_path,
            on_attempt=attempts,
        )

    error = caught.value
    assert error.message.startswith(f"page {DEDUP_KEY} to contact alice failed on 3 channels: ")
    assert "webhook channel down to contact alice failed" in error.message
    assert "channel missing of contact alice is not configured" in error.message
    assert "pagerduty channel pagerduty to contact alice failed" in error.message
    assert error.temporary is True
    assert [call[0] for call in attempts.calls] == ["down", "missing", "pagerduty"]
    assert all(call[1] is None for call in attempts.calls)
    assert_no_secret(error.message)


def test_dispatch_permanent_when_all_permanent(
    server: HTTPServer, tmp_path: Path, secrets: None
) -> None:
    server.expect_request("/v2/enqueue").respond_with_data("bad", status=400)

    with pytest.raises(ChannelError) as caught:
        dispatch(
            {"pagerduty": pagerduty(server)},
            make_contact(channels=["pagerduty"]),
            make_notification(),
            base_dir=tmp_path,
        )

    assert caught.value.temporary is False
    assert "failed on 1 channel: " in caught.value.message


def test_dispatch_contact_without_channels(tmp_path: Path) -> None:
    attempts = Attempts()

    with pytest.raises(ChannelError) as caught:
        dispatch(
            {},
            make_contact(channels=[]),
            make_notification(),
            base_dir=tmp_path,
            on_attempt=attempts,
        )

    assert caught.value.message == (
        "contact alice has no notification channels; list channels for the contact in the config"
    )
    assert caught.value.temporary is False
    assert attempts.calls == []
