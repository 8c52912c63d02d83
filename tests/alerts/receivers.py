"""Real receivers for the alert notifications, started by a test: an SMTP server and a webhook server.

`MailServer`: aiosmtpd on 127.0.0.1 with STARTTLS required before AUTH (LOGIN and PLAIN), a
self-signed certificate made here with `cryptography`, one login it accepts; it records every mail
it accepted, and can refuse recipients. `WebhookReceiver`: a local HTTP server that checks each
request the way a customer's receiver would, with its own few lines of `hmac` (not our `verify`):
the signature over `{timestamp}.{body}` with any secret it holds, a timestamp within its window of
its own clock (401 otherwise), an idempotency key it has not accepted yet (409 otherwise); it can
answer 500 until told otherwise, and records what it accepted. The lead's week test reuses both."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def happening_ids(self) -> list[int]:
        """The journal rows this mail tells (its X-PMS-Happenings header)."""
        header = str(self.message.get("X-PMS-Happenings") or "")
        return [int(part) for part in header.replace(",", " ").split()]

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())  # type: ignore[attr-defined]


class _MailHandler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp: SmtpProtocol, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.server.refused_recipients:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SmtpProtocol, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.server.lock:
            self.server.mails.append(ReceivedMail(mail_from=str(envelope.mail_from),
                                                  rcpt_tos=list(envelope.rcpt_tos),
                                                  message=message, login=login))  # type: ignore[arg-type]
        return "250 Message accepted"


class MailServer:
    """aiosmtpd with STARTTLS required and AUTH (LOGIN, PLAIN) only after it; `url` is what
    `smtp_url` takes, `ca_file` what `smtp_ca_file` takes."""

    def __init__(self, directory: Path, *, username: str = "pms", password: str = "s3cret:p@ss w/rd") -> None:
        self.username, self.password = username, password
        self.cert_path, key_path = self_signed_certificate(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, key_path)
        self.port = free_port()
        self.mails: list[ReceivedMail] = []
        self.failed_logins = 0
        self.refused_recipients: set[str] = set()
        self.lock = threading.Lock()
        self.controller = Controller(
            _MailHandler(self), hostname="127.0.0.1", port=self.port,
            tls_context=context, require_starttls=True, auth_require_tls=True,
            authenticator=self._authenticate, server_hostname="localhost",
        )

    def _authenticate(self, server: SmtpProtocol, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and mechanism in ("LOGIN", "PLAIN")
              and auth_data.login.decode() == self.username and auth_data.password.decode() == self.password)
        if not ok:
            self.failed_logins += 1
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=auth_data)

    @property
    def url(self) -> str:
        return f"smtp://{quote(self.username, safe='')}:{quote(self.password, safe='')}@localhost:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.cert_path)

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def received(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.mails)

    def received_happenings(self) -> list[int]:
        """Every journal row told by the mails received, in order (a row twice = told twice)."""
        return [happening_id for mail in self.received() for happening_id in mail.happening_ids]


@dataclass
class Accepted:
    idempotency_key: str
    delivery_id: str
    timestamp: int
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    """A customer's webhook endpoint, as strict as we tell them to be (docs/alerts.md "Webhooks")."""

    secrets: Sequence[str]
    clock: Callable[[], float] = time.time  # its own clock in unix seconds (tests: the scripted one)
    tolerance_s: float = 300.0
    fail_with: int | None = None  # answer this status (e.g. 500) to every request until set to None
    # A scripted outage: answer 500 to a delivery sent while start <= t < end, t being the time the sender
    # signed (X-PMS-Timestamp), else the receiver's clock. On a simulated clock the request can arrive
    # after the clock has stepped on; the signed time is when it was sent.
    outage: tuple[float, float] | None = None
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.seen_keys: dict[str, float] = {}  # key -> when accepted (kept for the window)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, reason = receiver.check(body, self.headers)
                payload = json.dumps({"status": status, "reason": reason}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pms"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def check(self, body: bytes, headers: Any) -> tuple[int, str]:
        with self.lock:
            self.requests += 1
            if self.fail_with is not None:
                self.rejected.append((self.fail_with, "told to fail"))
                return self.fail_with, "told to fail"
            signed = headers.get("X-PMS-Timestamp") or ""
            sent_at = int(signed) if signed.isdigit() else self.clock()
            if self.outage is not None and self.outage[0] <= sent_at < self.outage[1]:
                self.rejected.append((500, "in its outage"))
                return 500, "in its outage"
            status, reason = self._check(body, headers)
            if status != 200:
                self.rejected.append((status, reason))
            return status, reason

    def _check(self, body: bytes, headers: Any) -> tuple[int, str]:
        timestamp_text = headers.get("X-PMS-Timestamp") or ""
        signatures = [part.strip()[3:] for part in (headers.get("X-PMS-Signature") or "").split(",")
                      if part.strip().startswith("v1=")]
        key = headers.get("Idempotency-Key") or ""
        if not timestamp_text.isdigit() or not signatures or not key:
            return 401, "unsigned"
        signed = timestamp_text.encode() + b"." + body
        mine = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in self.secrets]
        if not any(hmac.compare_digest(a, b) for a in mine for b in signatures):
            return 401, "bad signature"
        now = self.clock()
        if abs(now - int(timestamp_text)) > self.tolerance_s:
            return 401, "stale timestamp"
        self.seen_keys = {k: at for k, at in self.seen_keys.items() if now - at <= self.tolerance_s * 2}
        if key in self.seen_keys or any(item.idempotency_key == key for item in self.accepted):
            return 409, "replayed delivery"
        self.seen_keys[key] = now
        self.accepted.append(Accepted(idempotency_key=key, delivery_id=headers.get("X-PMS-Delivery") or "",
                                      timestamp=int(timestamp_text), body=json.loads(body)))
        return 200, "accepted"

    def accepted_happenings(self) -> Iterator[int]:
        with self.lock:
            for item in self.accepted:
                for happening in item.body["happenings"]:
                    yield int(happening["happening_id"])
