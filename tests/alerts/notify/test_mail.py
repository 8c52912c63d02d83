"""Mail texts in ja and en, and sending them through a real SMTP server (aiosmtpd) with STARTTLS and
AUTH LOGIN/PLAIN; wrong logins and refused recipients are errors with sentences, not crashes."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pms_alerts.notify.mail import compose
from pms_alerts.notify.payload import Told
from pms_alerts.notify.smtp import MailError, SmtpServer, build_message, send_mail
from pms_common.timeutil import JST
from tests.alerts.receivers import MailServer

OPENED = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
RECOVERED = datetime(2026, 6, 1, 13, 30, tzinfo=JST)


def told(happening_id: int, phase: str = "raised", code: str = "pss00000001", name: str = "北斗第一発電所") -> Told:
    return Told(happening_id=happening_id, phase=phase, at=OPENED if phase == "raised" else RECOVERED,
                event_id=happening_id, kind="gateway_offline", state="open" if phase == "raised" else "recovered",
                severity="critical", service_code=code, plant_name=name, gateway_id="gw-1", opened_at=OPENED,
                recovered_at=None if phase == "raised" else RECOVERED,
                message="gateway gw-1 is offline (missed heartbeats)", params={"reason": "missed heartbeats"})


def test_one_happening_in_japanese() -> None:
    mail = compose([told(1)], "ja", "https://pms.example.jp/")
    assert mail.subject == "[PMS] 異常発生: 北斗第一発電所 (pss00000001) - 通信断"
    assert "内容: 北斗第一発電所（pss00000001） のゲートウェイ gw-1 との通信が途絶えました" in mail.text  # event_text
    assert "発生日時: 2026年06月01日 12:00" in mail.text
    assert "発電所ページ: https://pms.example.jp/plants/pss00000001" in mail.text


def test_one_recovery_in_english() -> None:
    mail = compose([told(2, "cleared")], "en", "https://pms.example.jp")
    assert mail.subject == "[PMS] Cleared: 北斗第一発電所 (pss00000001) - Gateway offline"
    assert "What: Gateway gw-1 at 北斗第一発電所 (pss00000001) is back online" in mail.text
    assert "Since: 2026-06-01 12:00 JST" in mail.text
    assert "Cleared at: 2026-06-01 13:30 JST" in mail.text
    assert "Plant page: https://pms.example.jp/plants/pss00000001" in mail.text


def test_a_group_lists_every_happening() -> None:
    items = [told(i, code=f"pss{i:08d}", name=f"発電所{i}") for i in range(1, 501)] + [told(900, "cleared")]
    ja = compose(items, "ja", "http://c")
    assert ja.subject == "[PMS] 501件のお知らせ (異常発生 500件 / 復旧 1件)"
    assert all(f"発電所{i} (pss{i:08d})" in ja.text for i in range(1, 501))
    en = compose(items, "en", "http://c")
    assert en.subject == "[PMS] 501 notifications (Raised 500, Cleared 1)"
    assert en.text.count("Plant page:") == 501


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path).start()
    yield server
    server.stop()


def test_mail_goes_through_starttls_and_login(mail_server: MailServer) -> None:
    content = compose([told(1)], "ja", "http://console")
    message = build_message(content, mail_from="pms@example.jp", to=["ops@example.jp", "boss@example.jp"],
                            message_id="abc123")
    note = send_mail(SmtpServer.parse(mail_server.url), message, timeout_s=5, ca_file=mail_server.ca_file)
    assert note is None
    [received] = mail_server.received()
    assert received.login == "pms"
    assert received.rcpt_tos == ["ops@example.jp", "boss@example.jp"]
    assert received.subject == content.subject
    assert "北斗第一発電所" in received.text
    assert received.message["Message-ID"] == "<abc123@pms>"


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_the_server_takes_auth_login_and_plain(mail_server: MailServer, mechanism: str) -> None:
    """smtplib (our sender) picks PLAIN when offered; the fixture server takes LOGIN too."""
    with smtplib.SMTP("127.0.0.1", mail_server.port, timeout=5) as client:
        client.starttls(context=ssl.create_default_context(cafile=mail_server.ca_file))
        client.ehlo()
        client.user, client.password = mail_server.username, mail_server.password
        client.auth(mechanism, client.auth_login if mechanism == "LOGIN" else client.auth_plain)
        client.sendmail("a@example.jp", ["b@example.jp"], b"Subject: x\r\n\r\nplain\r\n")
    assert [mail.login for mail in mail_server.received()] == ["pms"]


def test_a_password_smtplib_cannot_send_is_an_error_sentence(mail_server: MailServer) -> None:
    url = f"smtp://pms:%E3%83%91%E3%82%B9@localhost:{mail_server.port}"
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x", to=["b@x"], message_id="k")
    with pytest.raises(MailError, match="ASCII"):
        send_mail(SmtpServer.parse(url), message, timeout_s=5, ca_file=mail_server.ca_file)


def test_login_is_refused_without_starttls(mail_server: MailServer) -> None:
    url = mail_server.url + "?starttls=off"
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x", to=["b@x"], message_id="k")
    with pytest.raises(MailError, match=r"answered 530|not supported|refused the login"):
        send_mail(SmtpServer.parse(url), message, timeout_s=5, ca_file=mail_server.ca_file)
    assert mail_server.received() == []


def test_wrong_password_is_an_error_sentence(mail_server: MailServer) -> None:
    url = f"smtp://pms:wrong@localhost:{mail_server.port}"
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x", to=["b@x"], message_id="k")
    with pytest.raises(MailError, match="refused the login of 'pms'"):
        send_mail(SmtpServer.parse(url), message, timeout_s=5, ca_file=mail_server.ca_file)
    assert mail_server.failed_logins >= 1  # smtplib tries PLAIN, then LOGIN


def test_refused_recipients(mail_server: MailServer) -> None:
    mail_server.refused_recipients = {"gone@example.jp"}
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x", to=["gone@example.jp"],
                            message_id="k")
    with pytest.raises(MailError, match=r"refused every recipient \(gone@example.jp: 550"):
        send_mail(SmtpServer.parse(mail_server.url), message, timeout_s=5, ca_file=mail_server.ca_file)
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x",
                            to=["gone@example.jp", "ops@example.jp"], message_id="k2")
    note = send_mail(SmtpServer.parse(mail_server.url), message, timeout_s=5, ca_file=mail_server.ca_file)
    assert note is not None and "gone@example.jp" in note
    assert [mail.rcpt_tos for mail in mail_server.received()] == [["ops@example.jp"]]


def test_an_untrusted_certificate_is_an_error(mail_server: MailServer) -> None:
    message = build_message(compose([told(1)], "en", "http://c"), mail_from="a@x", to=["b@x"], message_id="k")
    with pytest.raises(MailError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        send_mail(SmtpServer.parse(mail_server.url), message, timeout_s=5, ca_file=None)


def test_smtp_urls() -> None:
    plain = SmtpServer.parse("smtp://u%40x:p%3Aw@mail.example.jp")
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls) == ("mail.example.jp", 587, True, False)
    assert (plain.username, plain.password) == ("u@x", "p:w")
    implicit = SmtpServer.parse("smtp+ssl://mail.example.jp")
    assert (implicit.port, implicit.implicit_tls, implicit.starttls) == (465, True, False)
    with pytest.raises(MailError, match="must start with"):
        SmtpServer.parse("http://mail.example.jp")
