"""One thread that serves every virtual module of a process on its pty (`pty_module.PtySimulator`).

`pms up --plants 1000` simulates a thousand modules in one process. A thread each (as the
simulator first had) meant a thousand threads waking every half second: a load average in the
hundreds, and collectors starved of the interpreter. Here one thread waits in one selector over
every module's pty master and a wake pipe (epoll where there is one, so a wake-up costs what is
ready, not what is registered); a heap holds each module's next deadline (scheduled
output, a fault's time, the meter's next slot end), so a module costs nothing between its
deadlines and the bytes a collector writes to it.

Writes are non-blocking: what a pty does not take now (a collector that is not reading) waits in
that module's buffer and goes out when the selector says the pty is writable, so one module that is not
read never holds up the others.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import heapq
import itertools
import logging
import math
import os
import selectors
import threading
import time
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

log = logging.getLogger(__name__)

READ_SIZE = 65536
WARM_UP_S = 0.005  # warm-up work a turn of the thread (a step is a millisecond or two)


class ServedModule(Protocol):
    """What the hub needs of one module on one pty (`PtySimulator` is one)."""

    @property
    def fd(self) -> int:
        """The pty master the module reads and writes (non-blocking)."""
        ...

    def serve(self, data: bytes, now: float) -> bytes:
        """Hand the module what came in (maybe nothing) at monotonic `now`; what it says back."""
        ...

    def next_wake(self, now: float) -> float | None:
        """When it next has work to do without input (monotonic), or None for not until input."""
        ...

    def warm_up(self, now: float) -> bool:
        """A few milliseconds of work that its answers will need (a meter's register sums); True while
        more is left."""
        ...

    def close(self) -> None:
        """Close the pty (called by the hub's thread once it no longer polls it)."""
        ...


class _Ask(enum.Enum):
    ADD = "add"
    WAKE = "wake"
    REMOVE = "remove"


@dataclass(eq=False)
class _Served:
    module: ServedModule
    fd: int
    due: float | None = None  # the deadline a heap entry stands for (earlier entries are stale)
    out: bytearray = field(default_factory=bytearray)  # said, not yet taken by the pty
    events: int = selectors.EVENT_READ
    open: bool = True


class PtyHub:
    """Serves modules added with `add` from one daemon thread, started with the first one."""

    _shared: ClassVar[PtyHub | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls) -> PtyHub:
        """The process's hub: every simulator that is given none is served by it."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Never select(): a big fleet's descriptors pass its limit of 1023.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._asks: list[tuple[_Ask, ServedModule, threading.Event | None]] = []
        self._served: dict[int, _Served] = {}  # by pty master; touched by the hub's thread only
        self._heap: list[tuple[float, int, _Served]] = []
        # Modules with warm-up work left, served a step at a time whenever nothing else is to be done:
        # a thousand meters adding up their history at once, each in one go, held up every answer for
        # a minute and collectors timed out (pms up --plants 1000).
        self._warming: collections.deque[_Served] = collections.deque()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self.loops = 0  # times the thread woke: what idle modules must not drive up
        self.failed_turns = 0

    @property
    def module_count(self) -> int:
        return len(self._served)

    @property
    def warming_count(self) -> int:
        """Modules with warm-up work left."""
        return len(self._warming)

    def add(self, module: ServedModule) -> None:
        """Serve `module` from now on (at once: what it has to say goes out now)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pty-modules", daemon=True)
                self._thread.start()
        self._ask(_Ask.ADD, module)

    def wake(self, module: ServedModule) -> None:
        """Serve `module` now (it was changed from another thread: a fault injected)."""
        self._ask(_Ask.WAKE, module)

    def remove(self, module: ServedModule, timeout_s: float = 5.0) -> bool:
        """Stop serving `module` and close it; False if the hub's thread never ran (nothing to wait for)
        or has not got to it within `timeout_s` (it will, and closes the module then: the caller must not
        close it itself, or the hub would poll a descriptor number the process may give to another file)."""
        if self._thread is None:
            return False
        done = threading.Event()
        self._ask(_Ask.REMOVE, module, done)
        return done.wait(timeout_s)

    def _ask(self, ask: _Ask, module: ServedModule, done: threading.Event | None = None) -> None:
        with self._lock:
            self._asks.append((ask, module, done))
        with contextlib.suppress(BlockingIOError):  # a full pipe has woken the thread already
            os.write(self._wake_w, b"!")

    # ---- the hub's thread ---------------------------------------------------------------------
    def _run(self) -> None:
        # The thread serves every module of the process for its whole life (tests run one after
        # another in one process): a turn that fails is logged and the next one goes on, where an
        # exception used to end the thread and silence every module from then on (seen as "does
        # not answer SKVER" in a later test).
        while True:
            try:
                self._turn()
            except Exception:
                self.failed_turns += 1
                log.exception("the virtual modules' thread failed a turn; it goes on")
                time.sleep(0.01)  # a failure that repeats every turn must not spin a core

    def _turn(self) -> None:
        events = self._selector.select(self._timeout_s())
        self.loops += 1
        now = time.monotonic()
        due: dict[_Served, bytes] = {}
        for key, mask in events:
            if key.fd == self._wake_r:
                self._take_asks(due)
                continue
            served = self._served.get(key.fd)
            if served is None:
                continue
            if mask & selectors.EVENT_WRITE:
                self._flush(served)
            if mask & selectors.EVENT_READ:
                due[served] = due.get(served, b"") + self._read(served)
        while self._heap and self._heap[0][0] <= now:
            when, _, served = heapq.heappop(self._heap)
            if served.open and served.due == when:
                served.due = None
                due.setdefault(served, b"")
        # Asks are looked at between two modules' answers: a removal (a collector stopping) waits for
        # one answer at most, not for a whole turn of them (100 stopping links once waited a minute).
        answered: set[_Served] = set()
        while pending := [(served, data) for served, data in due.items() if served not in answered]:
            for served, data in pending:
                if self._asks:
                    self._take_asks(due)
                answered.add(served)
                if served.open:
                    self._serve(served, data, now)
        self._warm_up(now)

    def _warm_up(self, now: float) -> None:
        """Warm-up steps for WARM_UP_S a turn, round the modules: answers wait that long at most."""
        until = time.monotonic() + WARM_UP_S
        while self._warming and time.monotonic() < until:
            served = self._warming.popleft()
            if not served.open:
                continue
            try:
                more = served.module.warm_up(now)
            except Exception:  # a bug in one module must not stop the others
                log.exception("the virtual module on descriptor %d failed and is closed", served.fd)
                self._close(served)
                continue
            if more:
                self._warming.append(served)

    def _timeout_s(self) -> float | None:
        if self._warming:
            return 0.0  # look for input, then go on warming up
        while self._heap and (not self._heap[0][2].open or self._heap[0][2].due != self._heap[0][0]):
            heapq.heappop(self._heap)  # stale: the module was removed, or got an earlier deadline
        if not self._heap:
            return None  # nothing due: wait for input or a request
        # Rounded up to the millisecond (epoll's unit): waking early would only spin until the deadline.
        return max(0.0, math.ceil((self._heap[0][0] - time.monotonic()) * 1000) / 1000)

    def _take_asks(self, due: dict[_Served, bytes]) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            asks, self._asks = self._asks, []
        for ask, module, done in asks:
            if ask is _Ask.ADD:
                served = _Served(module, module.fd)
                stale = self._served.get(served.fd)
                if stale is not None:
                    # The descriptor number was closed behind the hub's back and given to this new
                    # pty: what the hub held under it is gone.
                    log.warning("descriptor %d was reused while still served: the old module is dropped",
                                served.fd)
                    stale.open = False
                    self._served.pop(served.fd, None)
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(served.fd)
                self._served[served.fd] = served
                self._selector.register(served.fd, served.events)
                due.setdefault(served, b"")
                self._warming.append(served)
                continue
            served_now = self._served.get(module.fd)
            if served_now is None or served_now.module is not module:
                if done is not None:
                    done.set()  # never added, or removed already
                continue
            if ask is _Ask.WAKE:
                due.setdefault(served_now, b"")
            else:
                self._close(served_now)
                if done is not None:
                    done.set()

    def _serve(self, served: _Served, data: bytes, now: float) -> None:
        try:
            out = served.module.serve(data, now)
            wake_at = served.module.next_wake(now)
        except Exception:  # a bug in one module must not stop the others
            log.exception("the virtual module on descriptor %d failed and is closed", served.fd)
            self._close(served)
            return
        if out:
            served.out += out
            self._flush(served)
        if wake_at is not None and (served.due is None or wake_at < served.due):
            served.due = wake_at
            heapq.heappush(self._heap, (wake_at, next(self._seq), served))

    def _read(self, served: _Served) -> bytes:
        try:
            return os.read(served.fd, READ_SIZE)
        except OSError:  # nothing yet (BlockingIOError), or no reader on the other side
            return b""

    def _flush(self, served: _Served) -> None:
        while served.out:
            try:
                written = os.write(served.fd, served.out)
            except BlockingIOError:
                break  # the pty is full: the rest goes when the selector says it is writable
            except OSError:
                served.out.clear()  # the pty is gone: what was said is lost, as on a cut line
                break
            del served.out[:written]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if served.out else 0)
        if events != served.events:
            served.events = events
            try:
                self._selector.modify(served.fd, events)
            except (KeyError, ValueError, OSError):
                self._close(served)  # the descriptor is no longer this module's

    def _close(self, served: _Served) -> None:
        served.open = False
        self._served.pop(served.fd, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(served.fd)
        with contextlib.suppress(Exception):
            served.module.close()
