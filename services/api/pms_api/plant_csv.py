"""Plants as CSV, the way Japanese Excel writes and reads it: the columns (Japanese or English headers),
reading an uploaded file into checked rows with row-by-row problems, and writing the export.

Reading decodes UTF-8 (with or without the BOM Excel puts first) or Shift_JIS as Windows-31J (cp932,
what Japanese Excel saves as "CSV"); with `auto` a file that is not valid UTF-8 is read as cp932.
Numbers and codes are NFKC-normalised first, so full-width digits typed in Japanese input mode count.
Nothing here writes: the accepted rows go to pms_registry.plant_import, which writes them on confirmation.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from prometheus_client import Counter

from pms_api.i18n import translate
from pms_registry.pv import PV_FIELDS, PlantPv
from pms_registry.records import Plant

ReadEncoding = Literal["auto", "utf-8", "shift_jis"]
WriteEncoding = Literal["utf-8-sig", "shift_jis"]
Headers = Literal["ja", "en"]
MAX_ROWS = 20_000
ROWS_REFUSED = Counter("pms_api_plant_csv_rows_refused_total", "Rows of plant CSV uploads refused at preview")

_CODE = re.compile(r"^pss\d{8}$")
_CUSTOMER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_PHONE = re.compile(r"^[0-9+()\- ]{1,32}$")
# Dashes typed in Japanese input mode (minus sign, long vowel mark, en dash...) in a phone number are hyphens.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff70", "-"))


@dataclass(frozen=True)
class Column:
    name: str  # the field, and the English header
    ja: str
    low: float | None = None  # numbers: the range (None: text)
    high: float | None = None
    above_low: bool = False  # low itself is refused (a price or a capacity must be above 0)


COLUMNS: tuple[Column, ...] = (
    Column("service_code", "サービスコード"),
    Column("customer_id", "顧客ID"),
    Column("name", "発電所名"),
    Column("address", "住所"),
    Column("phone", "電話番号"),
    # Japan: Okinotorishima (20°N) to Etorofu (45.6°N), Yonaguni (122.9°E) to Minamitorishima (154°E).
    Column("latitude", "緯度", 20, 46),
    Column("longitude", "経度", 122, 154),
    Column("capacity_kw", "容量(kW)", 0, 100_000),
    Column("dc_kw", "DC容量(kW)", 0, 100_000, above_low=True),
    Column("ac_kw", "AC容量(kW)", 0, 100_000, above_low=True),
    Column("tilt_deg", "傾斜角(度)", 0, 90),
    Column("azimuth_deg", "方位角(度)", 0, 359.999),
    Column("system_loss_pct", "損失(%)", 0, 99.999),
    Column("gamma_pct_per_c", "温度係数(%/℃)", -2, 0),
    Column("tariff_yen_per_kwh", "売電単価(円/kWh)", 0, 1000, above_low=True),
)
BY_HEADER = {**{c.name: c for c in COLUMNS}, **{c.ja: c for c in COLUMNS}}
REQUIRED = ("customer_id", "name", "address", "phone")
PLANT_FIELDS = ("customer_id", "name", "address", "phone", "latitude", "longitude", "capacity_kw")
TEXT_LIMITS = {"name": 200, "address": 400}


def header_of(column: Column, lang: str) -> str:
    return column.ja if lang == "ja" else column.name


@dataclass(frozen=True)
class Problem:
    """What is wrong, as a message key of pms_api.i18n with its values: shown in the reader's language."""

    row: int | None  # the line in the file (the header is line 1); None: the whole file
    column: str | None
    key: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        message = translate(self.key, lang).format(**self.values)
        label = translate("csv_column", lang).format(column=header_of(BY_HEADER[self.column], lang)) \
            if self.column else ""
        if self.row is None:
            return f"{label}{message}"
        return translate("csv_row", lang).format(row=self.row) + f" {label}{message}"


@dataclass
class PreviewRow:
    row: int
    cells: dict[str, str]  # as written, by field
    problems: list[Problem]
    accepted: dict[str, Any] | None  # what pms_registry.plant_import writes; None when refused

    @property
    def is_new(self) -> bool:
        return not self.cells.get("service_code")


@dataclass
class Preview:
    columns: list[Column]
    rows: list[PreviewRow]
    problems: list[Problem]  # about the whole file

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [row.accepted for row in self.rows if row.accepted is not None]

    @property
    def refused(self) -> list[PreviewRow]:
        return [row for row in self.rows if row.accepted is None]


def decode(data: bytes, encoding: ReadEncoding) -> str | None:
    """The file's text; None when it is not in the encoding given (or, with auto, in neither)."""
    tries = {"auto": ("utf-8-sig", "cp932"), "utf-8": ("utf-8-sig",), "shift_jis": ("cp932",)}[encoding]
    for codec in tries:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def read_plants(data: bytes, encoding: ReadEncoding, *, customers: set[str], plants: Mapping[str, Plant],
                scope: str | None) -> Preview:
    """Check every row of an uploaded file. `plants` are the plants the importer may change (by code),
    `customers` the customers that exist, `scope` the importer's customer (None: all)."""
    text = decode(data, encoding)
    if text is None:
        return _file_problem(Problem(None, None, "csv_encoding"))
    lines = list(csv.reader(io.StringIO(text)))
    while lines and not any(cell.strip() for cell in lines[-1]):
        lines.pop()
    if not lines:
        return _file_problem(Problem(None, None, "csv_empty"))
    header = [cell.strip() for cell in lines[0]]
    unknown = [cell for cell in header if cell and cell not in BY_HEADER]
    if unknown:
        return _file_problem(Problem(None, None, "csv_unknown_column", {"value": ", ".join(unknown)}))
    columns = [BY_HEADER[cell] if cell else None for cell in header]
    named = {c.name for c in columns if c is not None}
    missing = [name for name in REQUIRED if name not in named]
    if missing:
        return _file_problem(Problem(None, None, "csv_missing_column", {"value": ", ".join(missing)}))
    if len(lines) - 1 > MAX_ROWS:
        return _file_problem(Problem(None, None, "csv_too_many", {"max": MAX_ROWS}))
    preview = Preview(columns=[c for c in columns if c is not None], rows=[], problems=[])
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in line):
            continue
        cells = {column.name: (line[i].strip() if i < len(line) else "")
                 for i, column in enumerate(columns) if column is not None}
        row = _check_row(number, cells, customers=customers, plants=plants, scope=scope, seen=seen)
        preview.rows.append(row)
    if not preview.rows:
        preview.problems.append(Problem(None, None, "csv_empty"))
    ROWS_REFUSED.inc(len(preview.refused))
    return preview


def _file_problem(problem: Problem) -> Preview:
    ROWS_REFUSED.inc()
    return Preview(columns=[], rows=[], problems=[problem])


def _check_row(number: int, cells: dict[str, str], *, customers: set[str], plants: Mapping[str, Plant],
               scope: str | None, seen: dict[str, int]) -> PreviewRow:
    problems: list[Problem] = []

    def refuse(column: str, key: str, **values: Any) -> None:
        problems.append(Problem(number, column, key, values))

    code = unicodedata.normalize("NFKC", cells.get("service_code", "")).strip().lower() or None
    existing = None
    if code is not None:
        if not _CODE.match(code):
            refuse("service_code", "csv_code_pattern")
        elif code in seen:
            refuse("service_code", "csv_duplicate", value=code, first=seen[code])
        elif (existing := plants.get(code)) is None:
            refuse("service_code", "csv_plant_unknown", value=code)
        else:
            seen[code] = number
    values: dict[str, Any] = {}
    for name in REQUIRED:
        raw = cells.get(name, "")
        if not raw:
            refuse(name, "csv_required")
        elif any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in raw):
            refuse(name, "csv_unprintable")
        elif len(raw) > TEXT_LIMITS.get(name, 32):
            refuse(name, "csv_too_long", max=TEXT_LIMITS.get(name, 32))
        else:
            values[name] = raw
    customer = unicodedata.normalize("NFKC", values.get("customer_id", ""))
    if customer:
        values["customer_id"] = customer
        if not _CUSTOMER.match(customer) or customer not in customers:
            refuse("customer_id", "csv_customer_unknown", value=customer)
        elif scope is not None and (customer != scope or (existing is not None and existing.customer_id != scope)):
            refuse("customer_id", "csv_customer_scope", value=customer)
    phone = unicodedata.normalize("NFKC", values.get("phone", "")).translate(_DASHES)
    if phone:
        values["phone"] = phone
        digits = sum(ch.isdigit() for ch in phone)
        if not _PHONE.match(phone) or not 10 <= digits <= 13:
            refuse("phone", "csv_phone")
    for column in COLUMNS:
        if column.low is None:
            continue
        raw = unicodedata.normalize("NFKC", cells.get(column.name, "")).replace(",", "").strip()
        if not raw:
            values[column.name] = None
            continue
        try:
            number_value = float(raw)
        except ValueError:
            refuse(column.name, "csv_number")
            continue
        assert column.high is not None
        too_low = number_value <= column.low if column.above_low else number_value < column.low
        if math.isnan(number_value) or too_low or number_value > column.high:
            refuse(column.name, "csv_above" if column.above_low else "csv_range",
                   low=f"{column.low:g}", high=f"{column.high:g}")
            continue
        values[column.name] = number_value
    if (values.get("latitude") is None) != (values.get("longitude") is None) and not any(
            p.column in ("latitude", "longitude") for p in problems):
        refuse("latitude", "csv_latlon_pair")
    set_tariff = False
    tariff = values.get("tariff_yen_per_kwh")
    if existing is None:
        set_tariff = tariff is not None
    elif tariff is not None and tariff != existing.tariff_yen_per_kwh:
        if existing.tariff_yen_per_kwh is None:
            set_tariff = True
        else:
            refuse("tariff_yen_per_kwh", "csv_tariff_change", value=f"{existing.tariff_yen_per_kwh:g}")
    accepted = None
    if not problems:
        accepted = {"row": number, "service_code": code, "plant": {name: values.get(name) for name in PLANT_FIELDS},
                    "pv": {name: values.get(name) for name in PV_FIELDS},
                    "tariff_yen_per_kwh": tariff, "set_tariff": set_tariff}
    return PreviewRow(row=number, cells=cells, problems=problems, accepted=accepted)


def write_plants(plants: Sequence[Plant], pv: Mapping[str, PlantPv], headers: Headers,
                 encoding: WriteEncoding) -> bytes:
    """The plants as the import reads them (the same columns): edit in Excel, import again."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header_of(column, headers) for column in COLUMNS])
    for plant in plants:
        settings = pv.get(plant.service_code) or PlantPv(service_code=plant.service_code)
        writer.writerow([_cell(getattr(plant, column.name, None) if hasattr(plant, column.name)
                               else getattr(settings, column.name)) for column in COLUMNS])
    return encode(buffer.getvalue(), encoding)


def encode(text: str, encoding: WriteEncoding) -> bytes:
    """UTF-8 with a BOM (Excel then reads it as UTF-8), or Windows-31J; a character Shift_JIS cannot
    hold becomes "?" rather than failing the download."""
    return text.encode("cp932", errors="replace") if encoding == "shift_jis" else text.encode("utf-8-sig")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_plant_form(cells: dict[str, str], *, customers: set[str], plants: Mapping[str, Plant],
                     scope: str | None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One plant from the console's form, by the same rules as a CSV row (fields named as the columns):
    what to write, or the problems, each naming its field."""
    row = _check_row(0, cells, customers=customers, plants=plants, scope=scope, seen={})
    return row.accepted, [replace(problem, row=None) for problem in row.problems]
