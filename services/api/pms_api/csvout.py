"""Series as CSV that Japanese Excel opens correctly: UTF-8 with a BOM, or Shift_JIS on request;
times in Japan time without an offset (Excel reads `2026-06-01 12:30:00` as a date-time)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from flask import Response
from pydantic import BaseModel

from pms_common.timeutil import JST

Encoding = Literal["utf-8", "shift_jis"]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def render_csv(rows: Sequence[BaseModel], columns: Sequence[str], encoding: Encoding) -> bytes:
    """Header row of `columns` (datetime columns note JST), one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in columns])
    text = buffer.getvalue()
    if encoding == "shift_jis":
        # Windows-31J (cp932) is the Shift_JIS that Excel writes and reads (it has ①, ㈱, NEC extensions).
        # Anything it cannot hold becomes "?" rather than failing the whole download.
        return text.encode("cp932", errors="replace")
    return text.encode("utf-8-sig")


def csv_response(rows: Sequence[BaseModel], columns: Sequence[str], encoding: Encoding, filename: str) -> Response:
    charset = "shift_jis" if encoding == "shift_jis" else "utf-8"
    response = Response(render_csv(rows, columns, encoding), content_type=f"text/csv; charset={charset}")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
