"""Series and lists as CSV that Japanese Excel opens correctly: UTF-8 with a BOM, or Shift_JIS on
request; times in Japan time without an offset (Excel reads `2026-06-01 12:30:00` as a date-time).

Column names are the API's field names (`headers=en`, what programs read) or Japanese
(`headers=ja`, what an operator's sheet shows: pms_api.i18n_pages, keys `col_<field>`). A file that
belongs to one plant carries the plant's code and name as its first columns on every row, not as a
metadata line above the header, which would break Excel's table and sort."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from flask import Response
from pydantic import BaseModel

from pms_api.i18n import MESSAGES
from pms_common.timeutil import JST

Encoding = Literal["utf-8", "shift_jis"]
Headers = Literal["en", "ja"]
Row = BaseModel | Mapping[str, object]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def column_title(column: str, headers: Headers) -> str:
    """The header of `column`: its field name, or its Japanese name (the field name when it has none)."""
    pair = MESSAGES.get(f"col_{column}")
    return pair[0] if headers == "ja" and pair is not None else column


def _value(row: Row, column: str) -> object:
    return row.get(column) if isinstance(row, Mapping) else getattr(row, column)


def render_csv(rows: Sequence[Row], columns: Sequence[str], encoding: Encoding, *, headers: Headers = "en",
               leading: Mapping[str, object] | None = None) -> bytes:
    """A header row, one line per row; `leading` columns (name → the same value on every row, e.g. the
    plant's code and name) come first."""
    fixed = dict(leading or {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column_title(column, headers) for column in (*fixed, *columns)])
    first = [_cell(value) for value in fixed.values()]
    for row in rows:
        writer.writerow(first + [_cell(_value(row, column)) for column in columns])
    text = buffer.getvalue()
    if encoding == "shift_jis":
        # Windows-31J (cp932) is the Shift_JIS that Excel writes and reads (it has ①, ㈱, NEC extensions).
        # Anything it cannot hold becomes "?" rather than failing the whole download.
        return text.encode("cp932", errors="replace")
    return text.encode("utf-8-sig")


def csv_response(rows: Sequence[Row], columns: Sequence[str], encoding: Encoding, filename: str,
                 *, headers: Headers = "en", leading: Mapping[str, object] | None = None) -> Response:
    charset = "shift_jis" if encoding == "shift_jis" else "utf-8"
    response = Response(render_csv(rows, columns, encoding, headers=headers, leading=leading),
                        content_type=f"text/csv; charset={charset}")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
