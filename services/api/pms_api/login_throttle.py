"""Console login throttling: too many wrong passwords for one username, or from one address, lock
further tries for a while.

Sans-IO: the caller passes the time, so tests need no sleeping. Counted per username (guessing one
account's password) and per client address (trying many accounts); the address limit is a few
times higher so that operators behind one NAT or proxy do not lock each other out by typos.
The console counts only addresses here (its per-user lockout is kept in the registry, where every
worker sees it and an admin can lift it); the firmware download counts both. Kept in memory per
API process: a restart forgets the counts, which only gives an attacker one
fresh window per restart, and several API replicas each count on their own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

# The number of keys remembered: the oldest go first, so a flood of random usernames cannot use
# up memory (an evicted key only starts counting afresh).
_MAX_KEYS = 10_000


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5  # per username within `window_s`
    window_s: float = 300.0
    address_factor: int = 4  # an address may fail this many times as often


class LoginThrottle:
    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _keys(self, username: str | None, address: str | None) -> list[tuple[str, int]]:
        # username None: count the address only (the console, whose per-user lockout is in the registry).
        keys = [] if username is None else [(f"user:{username.strip().casefold()}", self.policy.max_failures)]
        if address:
            keys.append((f"addr:{address}", self.policy.max_failures * self.policy.address_factor))
        return keys

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.policy.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, username: str | None, address: str | None, now: float) -> float:
        """Seconds until a login may be tried again (0 when it may be tried now)."""
        wait = 0.0
        for key, limit in self._keys(username, address):
            times = self._recent(key, now)
            if len(times) >= limit:
                # The try is allowed again once enough failures have left the window.
                wait = max(wait, times[len(times) - limit] + self.policy.window_s - now)
        return wait

    def failed(self, username: str | None, address: str | None, now: float) -> None:
        for key, limit in self._keys(username, address):
            times = self._failures.setdefault(key, deque(maxlen=limit))
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > _MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """A right password clears that username's count (not the address's: one good account
        must not reset the count of an address that tries many)."""
        self._failures.pop(f"user:{username.strip().casefold()}", None)
