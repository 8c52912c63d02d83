"""What the browser tests share: a headless Chromium for the test, quit after it (a test module whose
console downloads files defines its own `browser`, with a download folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import start_chromium


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = start_chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()
