"""The e-mail of one delivery (sans-IO): a subject and a plain-text body in the channel's language.

One happening reads as one notice: the plant's name, what happened, since when (JST) and a link to
the plant's page in the console. A group (a storm) reads as a count in the subject and one block
per happening in the body, in the order they happened."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pms_alerts.notify.payload import Told
from pms_common import event_text
from pms_common.timeutil import JST

Lang = Literal["ja", "en"]

PHASE_WORDS: dict[str, tuple[str, str]] = {  # phase: (日本語, English)
    "raised": ("異常発生", "Raised"),
    "cleared": ("復旧", "Cleared"),
    "acknowledged": ("確認", "Acknowledged"),
    "info": ("お知らせ", "Notice"),
}


@dataclass(frozen=True)
class MailContent:
    subject: str
    text: str


def what_happened(item: Told, lang: Lang) -> str:
    """The sentence telling what happened, in `lang` (pms_common.event_text, shared with the console)."""
    phase: event_text.Phase = item.phase if item.phase in event_text.PHASES else "info"  # type: ignore[assignment]
    return event_text.render(item.kind, phase, event_text.event_params(item, item.plant_name), lang,
                             message=item.message)


def _when(moment: datetime, lang: Lang) -> str:
    local = moment.astimezone(JST)
    return local.strftime("%Y年%m月%d日 %H:%M") if lang == "ja" else local.strftime("%Y-%m-%d %H:%M JST")


def _subject_of(item: Told) -> str:
    if item.plant_name and item.service_code:
        return f"{item.plant_name} ({item.service_code})"
    return item.service_code or (f"gateway {item.gateway_id}" if item.gateway_id else "-")


def _phase_word(phase: str, lang: Lang) -> str:
    words = PHASE_WORDS.get(phase, (phase, phase))
    return words[0] if lang == "ja" else words[1]


def _block(item: Told, lang: Lang, console_url: str) -> str:
    ja = lang == "ja"
    lines = [
        f"■ {_phase_word(item.phase, lang)}: {_subject_of(item)}",
        f"{'内容' if ja else 'What'}: {what_happened(item, lang)}",
        f"{'発生日時' if ja else 'Since'}: {_when(item.opened_at, lang)}",
    ]
    if item.phase == "cleared" and item.recovered_at is not None:
        lines.append(f"{'復旧日時' if ja else 'Cleared at'}: {_when(item.recovered_at, lang)}")
    if item.phase == "acknowledged" and item.acknowledged_by:
        comment = f" ({item.ack_comment})" if item.ack_comment else ""
        lines.append(f"{'確認者' if ja else 'Acknowledged by'}: {item.acknowledged_by}{comment}")
    if item.service_code:
        lines.append(f"{'発電所ページ' if ja else 'Plant page'}: {console_url.rstrip('/')}/plants/{item.service_code}")
    return "\n".join(lines)


def compose(told: Sequence[Told], lang: Lang, console_url: str) -> MailContent:
    if not told:
        raise ValueError("a mail tells at least one happening")
    ordered = sorted(told, key=lambda item: (item.at, item.happening_id))
    ja = lang == "ja"
    if len(ordered) == 1:
        item = ordered[0]
        what = event_text.kind_label(item.kind, lang)
        subject = f"[PMS] {_phase_word(item.phase, lang)}: {_subject_of(item)} - {what}"
        intro = "次のできごとをお知らせします。" if ja else "This happened:"
    else:
        counts = Counter(item.phase for item in ordered)
        parts = [f"{_phase_word(phase, lang)} {count}{'件' if ja else ''}"
                 for phase, count in sorted(counts.items(), key=lambda pair: list(PHASE_WORDS).index(pair[0])
                                            if pair[0] in PHASE_WORDS else 99)]
        if ja:
            subject = f"[PMS] {len(ordered)}件のお知らせ ({' / '.join(parts)})"
            intro = f"{len(ordered)}件のできごとをまとめてお知らせします。"
        else:
            subject = f"[PMS] {len(ordered)} notifications ({', '.join(parts)})"
            intro = f"{len(ordered)} things happened:"
    footer = ("このメールは PMS から自動送信されています。" if ja
              else "This mail was sent by PMS automatically.")
    text = "\n\n".join([intro, *(_block(item, lang, console_url) for item in ordered), footer]) + "\n"
    return MailContent(subject=subject.replace("\n", " "), text=text)
