"""The plant page's charts as Debian's Chromium draws them, in ja and en and at two window widths: the
rendered date ticks are distinct and formatted per view (HH:MM on a day, M/D on a month, the month's
name on a year with the year as the axis title), no two tick labels overlap, and no legend box
intersects any axis label's box."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from tests.browser.serving import log_in_as_admin, served

pytestmark = pytest.mark.integration

ADMIN_KEY = "charts-browser-admin-key"
CHARTS = ("realtime", "energy-hour", "energy-day", "energy-month", "peaks", "price")
WITH_LEGEND = ("energy-hour", "energy-day", "energy-month")  # sold and bought: two series

# Every chart's tick labels and the boxes of its axis labels, axis titles and legend, in page pixels.
READ_CHARTS = """
const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
const out = {};
for (const id of arguments[0]) {
  const root = document.getElementById("chart-" + id);
  const texts = (sel) => [...root.querySelectorAll(sel)];
  const legend = root.querySelector(".legend");
  out[id] = {
    x: texts(".xtick text").map((t) => t.textContent),
    xBoxes: texts(".xtick text").map(box),
    xTitle: texts(".g-xtitle text").map((t) => t.textContent).join(""),
    labels: texts(".xtick text, .ytick text, .y2tick text, .g-xtitle text, .g-ytitle text, .g-y2title text")
      .map(box),
    legend: legend && legend.getBoundingClientRect().width > 0 ? box(legend) : null,
  };
}
return out;
"""


@dataclass
class Plant:
    url: str
    code: str


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pinned_clock: datetime) -> Iterator[Plant]:
    """A plant with 40 days of slots, "now" pinned to a JST noon: just after Japan's midnight today's
    hour chart has no slot yet (the first one ends at 00:30) and has no legend to check."""
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry, store = app.config["registry"], app.config["store"]
    now = timeutil.now_jst()
    registry.ensure_customer("C00001", "デモ電力")
    code = registry.create_plant(customer_id="C00001", name="つくば第一", address="茨城県つくば市", phone="029-000-0000",
                                 created_at=now, tariff_yen_per_kwh=16.0, capacity_kw=49.5)
    registry.bind_gateway("gw-chart-01", code, at=now - timedelta(days=40))
    # Registers every 30 minutes from 40 days ago (this month and last): sold and bought energy each
    # slot, so the energy charts carry two series and their legends; power samples through today.
    first = timeutil.today_bounds(now)[0] - timedelta(days=40)
    slots = int((now - first) / timedelta(minutes=30))
    store.write_readings("gw-chart-01", power=[
        PowerReading(measured_at=now - timedelta(minutes=10 * i), power_w=-2000 - i) for i in range(60)], energy=[
        EnergyReading(slot_end=first + timedelta(minutes=30 * i), forward_kwh=100.0 + 0.2 * i,
                      reverse_kwh=500.0 + 1.5 * i) for i in range(slots + 1)])
    try:
        with served(app) as url:
            yield Plant(url, code)
    finally:
        store.close()
        registry.close()


def _drawn(driver: Any) -> dict[str, Any]:
    """The charts once every one has its ticks and the two-series charts their legends."""
    def ready(d: Any) -> dict[str, Any] | None:
        found: dict[str, Any] = d.execute_script(READ_CHARTS, list(CHARTS))
        complete = all(found[c]["x"] for c in CHARTS) and all(found[c]["legend"] for c in WITH_LEGEND)
        return found if complete else None

    drawn: dict[str, Any] = WebDriverWait(driver, 20).until(ready)
    return drawn


def _overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize(("lang", "width"), [("ja", 1280), ("en", 1280), ("ja", 760)])
def test_date_ticks_are_distinct_and_formatted_and_legends_cover_no_label(browser: Any, plant: Plant,
                                                                           lang: str, width: int) -> None:
    browser.set_window_size(width, 1000)
    log_in_as_admin(browser, plant.url, ADMIN_KEY)
    browser.get(f"{plant.url}/lang/{lang}?back=/plants/{plant.code}")
    charts = _drawn(browser)
    today = timeutil.now_jst().date()
    hours = [f"{h:02d}:00" for h in range(0, 25, 3)]
    assert charts["realtime"]["x"] == hours
    assert charts["energy-hour"]["x"] == hours[:-1] or charts["energy-hour"]["x"] == hours[:-1:2]
    for view in ("energy-day", "peaks", "price"):
        days = charts[view]["x"]
        assert all(re.match(rf"^{today.month}/\d{{1,2}}$", label) for label in days), (view, days)
        numbers = [int(label.split("/")[1]) for label in days]
        steps = {b - a for a, b in itertools.pairwise(numbers)}
        assert numbers[0] == 1 and len(steps) == 1 and min(steps) >= 2 and len(days) >= 5, (view, days)
    months = charts["energy-month"]["x"]
    month_form = r"^\d{1,2}月$" if lang == "ja" else r"^[A-Z][a-z]{2}$"
    assert months[0] in ("1月", "Jan") and all(re.match(month_form, m) for m in months), months
    assert str(today.year) in charts["energy-month"]["xTitle"]
    for view in CHARTS:
        ticks, boxes = charts[view]["x"], charts[view]["xBoxes"]
        assert len(set(ticks)) == len(ticks), (view, ticks)
        crowded = [(ticks[i], ticks[i + 1]) for i in range(len(boxes) - 1) if _overlaps(boxes[i], boxes[i + 1])]
        assert not crowded, (view, width, crowded)
    for view in WITH_LEGEND:
        legend = charts[view]["legend"]
        assert legend is not None and charts[view]["labels"], view
        covered = [label for label in charts[view]["labels"] if _overlaps(legend, label)]
        assert not covered, (view, legend, covered)
