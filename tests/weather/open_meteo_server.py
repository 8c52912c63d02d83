"""A local stand-in for Open-Meteo's forecast API (http.server in a thread): it answers in the API's
documented JSON format (`timeformat=unixtime`; one object per location, a list when several were
asked for) and records every request. Tests queue failures (429, 5xx, 400) and glitches."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pms_common.timeutil import JST

Hourly = Callable[[float, float, datetime], dict[str, Any]]


def sunny(latitude: float, longitude: float, hour_end: datetime) -> dict[str, Any]:
    """A plausible hour: radiation peaks at noon JST, temperature 15 + hour/2 °C."""
    h = hour_end.hour
    ghi = max(0.0, 800.0 - 100.0 * abs(h - 12.5) ** 1.5) if 6 < h < 19 else 0.0
    return {"temperature_2m": 15.0 + h / 2, "cloud_cover": 10, "weather_code": 1, "shortwave_radiation": round(ghi, 1),
            "direct_normal_irradiance": round(ghi * 0.9, 1), "diffuse_radiation": round(ghi * 0.2, 1),
            "global_tilted_irradiance": round(ghi * 1.05, 1)}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class OpenMeteoStandIn:
    hourly: Hourly = sunny
    quarter_hourly: Hourly | None = None
    replies: list[Reply] = field(default_factory=list)  # served first, one per request
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    today: datetime = field(default_factory=lambda: datetime.now(JST).replace(hour=0, minute=0, second=0,
                                                                                  microsecond=0))

    def answer(self, path: str, query: dict[str, str]) -> Reply:
        self.requests.append((path, query))
        if self.replies:
            return self.replies.pop(0)
        lats = [float(x) for x in query["latitude"].split(",")]
        lons = [float(x) for x in query["longitude"].split(",")]
        start = self.today - timedelta(days=int(query["past_days"]))
        hours = [start + timedelta(hours=i) for i in range(24 * (int(query["past_days"]) + int(query["forecast_days"])))]
        items = []
        for lat, lon in zip(lats, lons, strict=True):
            item: dict[str, Any] = {
                "latitude": lat, "longitude": lon, "generationtime_ms": 0.5, "utc_offset_seconds": 32400,
                "timezone": "Asia/Tokyo", "timezone_abbreviation": "JST", "elevation": 40.0,
                "hourly_units": {"time": "unixtime", "shortwave_radiation": "W/m²"},
                "hourly": _block(hours, query["hourly"].split(","), self.hourly, lat, lon),
            }
            if "minutely_15" in query and self.quarter_hourly is not None:
                quarters = [start + timedelta(minutes=15 * i) for i in range(4 * len(hours))]
                item["minutely_15"] = _block(quarters, query["minutely_15"].split(","), self.quarter_hourly, lat, lon)
            items.append(item)
        return Reply(200, items if len(items) > 1 else items[0])


def _block(times: list[datetime], names: list[str], values: Hourly, lat: float, lon: float) -> dict[str, Any]:
    rows = [values(lat, lon, t) for t in times]
    return {"time": [int(t.timestamp()) for t in times], **{n: [row.get(n) for row in rows] for n in names}}


@contextmanager
def serving(stand_in: OpenMeteoStandIn) -> Iterator[OpenMeteoStandIn]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            reply = stand_in.answer(parts.path, query)
            body = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
