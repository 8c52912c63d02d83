"""The console served for a browser test: the Flask app on a free port in a thread, stopped after."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from tests.conftest import free_port


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The app's base URL while it is served."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(10)


def log_in_as_admin(driver: Any, url: str, password: str) -> None:
    """Log in through the console's login page as `admin` and wait for the home screen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/login")
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "management-status")))
