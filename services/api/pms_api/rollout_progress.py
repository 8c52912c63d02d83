"""How the console shows a rollout's progress: each member state in one of five bands, in bar order.

The rollout page draws a group's members as one bar of bands (committed, on their way, in error,
not started, cancelled); the server renders the first view from these and the page's script
redraws from the same table (given to it as JSON), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Member states in the order a gateway goes through them (the registry's, and pms_common's UpdateState).
MEMBER_STATES = ("pending", "waiting_window", "queued", "downloading", "verifying", "installing", "restarting",
                 "checking_health", "committed", "rolled_back", "failed", "expired", "cancelled")
BANDS: dict[str, tuple[str, ...]] = {
    "committed": ("committed",),
    "under_way": ("queued", "downloading", "verifying", "installing", "restarting", "checking_health"),
    "in_error": ("rolled_back", "failed", "expired"),
    "not_started": ("pending", "waiting_window"),
    "cancelled": ("cancelled",),
}
BAND_OF = {state: band for band, states in BANDS.items() for state in states}


@dataclass(frozen=True)
class Band:
    name: str
    count: int
    percent: float  # of the group's members, for the bar's width


def bands(counts: Mapping[str, int]) -> list[Band]:
    """The bar of a group (or a whole rollout) with its members counted by state; a state this table
    does not know is shown under way rather than dropped."""
    total = sum(counts.values())
    by_band = dict.fromkeys(BANDS, 0)
    for state, count in counts.items():
        by_band[BAND_OF.get(state, "under_way")] += count
    return [Band(name, count, 100.0 * count / total if total else 0.0) for name, count in by_band.items()]


def ordered_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The non-zero counts in the order a gateway goes through the states (unknown states last)."""
    rank = {state: index for index, state in enumerate(MEMBER_STATES)}
    return sorted(((s, n) for s, n in counts.items() if n), key=lambda item: (rank.get(item[0], len(rank)), item[0]))
