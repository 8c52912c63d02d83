"""Open-Meteo over HTTP: batched requests, a per-location cache, the daily call budget, retries with
backoff and jitter, and stale stand-ins while the provider is down.

Two endpoints of one API: the forecast (`/v1/forecast`, model `best_match` unless set) and JMA's
models (`/v1/jma`, `jma_seamless`). The base URL is a setting, so a self-hosted Open-Meteo or a
paid endpoint works the same.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from prometheus_client import Counter, Gauge

from pms_common import timeutil
from pms_weather.budget import BudgetSpent, CallBudget
from pms_weather.providers.base import Fetched, Location
from pms_weather.providers.clearsky import clear_sky_slot, slot_ends
from pms_weather.providers.open_meteo_format import LocationAnswer, ProviderFormatError, Query, parse_answer, slots_of

log = logging.getLogger(__name__)
REQUESTS = Counter("pms_weather_provider_requests_total", "Requests sent to the weather provider, by outcome",
                   ["outcome"])
CACHE_HITS = Counter("pms_weather_cache_hits_total", "Plant locations answered from this hour's cache")
STALE_PLANTS = Gauge("pms_weather_stale_plants", "Plants whose last round's weather is stale (provider down)")
STALE_ROUNDS = Counter("pms_weather_stale_total", "Plant rounds answered with stale stand-ins")

ENDPOINTS = {"open-meteo": ("/v1/forecast", "best_match"), "open-meteo-jma": ("/v1/jma", "jma_seamless")}


class ProviderDown(Exception):
    """The provider did not answer usefully, after the retries it deserved."""


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    first_delay_s: float = 2.0
    max_delay_s: float = 60.0

    def delay_s(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Exponential backoff with jitter (half to all of the step), or the server's Retry-After."""
        if retry_after is not None:
            try:
                return min(self.max_delay_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        step = min(self.max_delay_s, self.first_delay_s * 2.0**attempt)
        return float(step * (0.5 + rng.random() / 2))


@dataclass
class _Cached:
    hour: int  # epoch of the cache period (an hour by default) it was fetched in
    answer: LocationAnswer


class OpenMeteoProvider:
    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        query: Query,
        budget: CallBudget,
        batch_size: int = 50,
        refresh_h: int = 1,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = timeutil.now_jst,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        path, _ = ENDPOINTS[name]
        self.name = name
        self.url = base_url.rstrip("/") + path
        self.query = query
        self.budget = budget
        self.batch_size = batch_size
        self.refresh_s = 3600 * refresh_h
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._cache: dict[tuple[float, float], _Cached] = {}

    def close(self) -> None:
        self._client.close()

    def fetch(self, locations: Sequence[Location], start: datetime, end: datetime) -> Fetched:
        # The cache period: the JST hour (or block of `refresh_h` hours) the round falls in.
        hour = timeutil.to_epoch(self.clock()) // self.refresh_s * self.refresh_s
        wanted = [loc for loc in locations if self._fresh(loc, hour) is None]
        CACHE_HITS.inc(len(locations) - len(wanted))
        # One location per grid point asked once: plants next door share a request slot.
        unique = list({_key(loc): loc for loc in wanted}.values())
        problem = None
        for first in range(0, len(unique), self.batch_size):
            batch = unique[first:first + self.batch_size]
            try:
                answers = self._request(batch)
            except (ProviderDown, BudgetSpent) as exc:
                problem = str(exc)
                log.warning("weather: %s", problem)
                if isinstance(exc, BudgetSpent):
                    break
                continue
            for loc, answer in zip(batch, answers, strict=True):
                self._cache[_key(loc)] = _Cached(hour, answer)
        return self._answer(locations, start, end, hour, problem)

    def _fresh(self, loc: Location, hour: int) -> _Cached | None:
        cached = self._cache.get(_key(loc))
        return cached if cached is not None and cached.hour == hour else None

    def _answer(self, locations: Sequence[Location], start: datetime, end: datetime, hour: int,
                problem: str | None) -> Fetched:
        ends = slot_ends(start, end)
        fetched = Fetched(problem=problem)
        stale_plants = 0
        for loc in locations:
            cached = self._cache.get(_key(loc))
            stale = cached is None or cached.hour != hour
            series = []
            if cached is not None:
                try:
                    series = slots_of(cached.answer, loc, ends, source=self.name, model=self.query.model, stale=stale)
                except ProviderFormatError as exc:
                    REQUESTS.labels("format").inc()
                    fetched.problem = f"the answer for {loc.service_code} is unusable: {exc}"
                    self._cache.pop(_key(loc), None)
                    series, stale = [], True
            if not series and stale:
                # Nothing from the provider at all: the clear-sky model stands in, marked stale.
                series = [clear_sky_slot(loc.service_code, t, loc.latitude, loc.longitude, stale=True) for t in ends]
            stale_plants += stale
            fetched.series[loc.service_code] = series
        STALE_PLANTS.set(stale_plants)
        STALE_ROUNDS.inc(stale_plants)
        return fetched

    def _request(self, batch: Sequence[Location]) -> list[LocationAnswer]:
        params = self.query.params(batch)
        for attempt in range(self.retry.retries + 1):
            self.budget.spend(self.query.calls_for(len(batch)), self.clock())
            retry_after = None
            try:
                response = self._client.get(self.url, params=params)
            except httpx.TransportError as exc:
                REQUESTS.labels("network").inc()
                reason = f"{self.name} could not be reached at {self.url}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        answers = parse_answer(response.json(), len(batch))
                    except (ValueError, ProviderFormatError) as exc:
                        REQUESTS.labels("format").inc()
                        raise ProviderDown(f"{self.name} answered in an unknown format: {exc}") from exc
                    REQUESTS.labels("ok").inc()
                    return answers
                reason = f"{self.name} answered HTTP {status}: {_reason(response)}"
                if status != 429 and status < 500:
                    REQUESTS.labels("http_4xx").inc()
                    raise ProviderDown(reason)  # our request is wrong: asking again will not help
                REQUESTS.labels("http_429" if status == 429 else "http_5xx").inc()
                retry_after = response.headers.get("Retry-After")
            if attempt == self.retry.retries:
                raise ProviderDown(f"{reason} (after {attempt + 1} attempts)")
            self.sleep(self.retry.delay_s(attempt, retry_after, self.rng))
        raise AssertionError("unreachable")


def _key(loc: Location) -> tuple[float, float]:
    return round(loc.latitude, 4), round(loc.longitude, 4)


def _reason(response: httpx.Response) -> str:
    # Open-Meteo's errors are {"error": true, "reason": "..."}.
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    reason = body.get("reason") if isinstance(body, dict) else None
    if isinstance(reason, str):
        return reason
    return response.text[:200]
