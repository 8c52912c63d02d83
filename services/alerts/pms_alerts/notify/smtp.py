"""Sending one mail over SMTP with STARTTLS (or implicit TLS) and login: stdlib smtplib, in a thread.

Every failure (refused login, refused recipients, an unreachable or misbehaving server, a
certificate that does not verify) comes out as one MailError whose message says what went wrong;
the dispatcher records it on the delivery and retries, it never crashes the service."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from pms_alerts.notify.mail import MailContent
from pms_common.errors import PmsError


class MailError(PmsError):
    """A mail that was not accepted by the SMTP server; the message says why."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+ssl", "smtps"):
            raise MailError(f"SMTP URL {url.rsplit('@', maxsplit=1)[-1]!r} must start with smtp:// or smtp+ssl://")
        if not parts.hostname:
            raise MailError("the SMTP URL names no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise MailError(f"the SMTP URL's port is not a number (quote a password's '/' as %2F): {exc}") from exc
        implicit = parts.scheme != "smtp"
        options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
        starttls = not implicit and options.get("starttls", "on") not in ("off", "false", "0", "no")
        return cls(host=parts.hostname, port=port or (465 if implicit else 587), implicit_tls=implicit,
                   starttls=starttls, username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


def build_message(content: MailContent, *, mail_from: str, to: Sequence[str], message_id: str,
                  happening_ids: Sequence[int] = ()) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = mail_from
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    # The delivery's idempotency key: a mail reader or archive can drop a duplicate by it.
    message["Message-ID"] = f"<{message_id}@pms>"
    if happening_ids:  # for mail filters and tests: which journal rows this mail tells
        message["X-PMS-Happenings"] = ", ".join(str(happening_id) for happening_id in happening_ids)
    message.set_content(content.text, charset="utf-8")
    return message


def send_mail(server: SmtpServer, message: EmailMessage, *, timeout_s: float, ca_file: str | None = None) -> str | None:
    """Send; returns a note when the server refused some (not all) recipients: the others have the
    mail, so it is delivered (sending again would duplicate it to them), and the note is recorded."""
    context = ssl.create_default_context(cafile=ca_file)
    try:
        client: smtplib.SMTP
        if server.implicit_tls:
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout_s, context=context)
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout_s)
        with client:
            client.ehlo()
            if server.starttls:
                client.starttls(context=context)
                client.ehlo()
            if server.username is not None:
                client.login(server.username, server.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"the SMTP server {server.host}:{server.port} refused the login of "
                        f"{server.username!r}: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        detail = "; ".join(f"{rcpt}: {code} {_text(reason)}" for rcpt, (code, reason) in exc.recipients.items())
        raise MailError(f"the SMTP server refused every recipient ({detail})") from exc
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"the SMTP server {server.host}:{server.port} answered {exc.smtp_code} "
                        f"{_text(exc.smtp_error)}") from exc
    except UnicodeError as exc:
        raise MailError(f"the SMTP login or an address is not ASCII, which SMTP AUTH cannot carry: {exc}") from exc
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise MailError(f"cannot send mail through {server.host}:{server.port}: {exc}") from exc
    if refused:
        detail = "; ".join(f"{rcpt}: {code} {_text(reason)}" for rcpt, (code, reason) in refused.items())
        return f"the SMTP server refused some recipients ({detail})"
    return None


async def send_mail_async(server: SmtpServer, message: EmailMessage, *, timeout_s: float,
                          ca_file: str | None = None) -> str | None:
    return await asyncio.to_thread(send_mail, server, message, timeout_s=timeout_s, ca_file=ca_file)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
