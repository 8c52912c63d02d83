"""Every word the console's templates and scripts ask for exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pms_api
from pms_api.i18n import MESSAGES, catalog, translate

PACKAGE = Path(pms_api.__file__).parent


def test_every_template_word_is_translated() -> None:
    used: set[str] = set()
    for template in (PACKAGE / "templates").glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+)'\)", template.read_text()))
    for script in (PACKAGE / "static").glob("*.js"):
        used |= set(re.findall(r"\bW\(\"([a-z_]+)\"\)", script.read_text()))
    assert used, "the scan found no words: the pattern is stale"
    assert sorted(used - set(MESSAGES)) == []


def test_prefixed_words_cover_every_kind_state_and_status() -> None:
    for key in ["notice_maintenance", "notice_outage", "notice_info",
                "status_normal", "status_not_measured", "status_offline", "status_no_gateway"]:
        assert key in MESSAGES
    # Event kinds and phases are named by pms_common.event_text, the one catalogue of event words.
    assert not [key for key in MESSAGES if key.startswith(("kind_", "state_"))]


def test_both_languages() -> None:
    assert translate("sales", "ja") == "売電状況"
    assert translate("sales", "en") == "Sales status"
    assert translate("unknown_key", "en") == "unknown_key"
    assert all(value for value in catalog("en").values())
    assert set(catalog("ja")) == set(MESSAGES)
