"""The alerting rules (deploy/prometheus/alerts.yml) against their unit tests, and the Alertmanager config.

`promtool test rules deploy/prometheus/tests/alerts_test.yml` must pass, every alert must be tested both
one evaluation before its `for` is up (nothing) and when it is (firing), and the tests must be sharp:
the same tests against the rules with any one `for` moved by one evaluation interval fail. Needs
Debian's `prometheus` (promtool) and `prometheus-alertmanager` (amtool) packages: a missing tool fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_deploy_configs import PROMETHEUS_DIR, REPO, require_tool

pytestmark = pytest.mark.integration

RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """A Prometheus duration such as 2m30s in seconds."""
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"unexpected duration {duration!r}"
    return sum(int(n) * _UNITS_S[u] for n, u in parts)


def alerts() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def run_rule_tests(test_file: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", "/usr/bin/promtool")
    return subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)


def test_promtool_rule_tests_pass() -> None:
    result = run_rule_tests(RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_just_before_and_at_its_for_duration() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    interval_s = seconds(tests["evaluation_interval"])
    quiet: dict[str, set[int]] = {}
    firing: dict[str, set[int]] = {}
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            at = seconds(check["eval_time"])
            (firing if check["exp_alerts"] else quiet).setdefault(check["alertname"], set()).add(at)
    for name, rule in alerts().items():
        assert firing.get(name), f"{name}: no unit test where it fires"
        if seconds(rule.get("for", "0s")) == 0:
            continue  # fires at its first true evaluation; its test checks the evaluation before
        assert any(at - interval_s in quiet.get(name, set()) for at in firing[name]), (
            f"{name}: no test that it is quiet one evaluation ({interval_s} s) before it fires")


@pytest.mark.parametrize("shift_s", [-15, 15])
def test_the_rule_tests_catch_a_for_moved_by_one_evaluation(tmp_path: Path, shift_s: int) -> None:
    """The tests pin each `for`: moved earlier an alert fires where its test expects quiet, later it misses."""
    tested = yaml.safe_load(RULE_TESTS.read_text())
    for name, rule in alerts().items():
        for_s = seconds(rule.get("for", "0s"))
        if for_s == 0:
            continue
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for each in group["rules"]:
                if each.get("alert") == name:
                    each["for"] = f"{for_s + shift_s}s"
        folder = tmp_path / f"{name}{shift_s:+d}"
        (folder / "tests").mkdir(parents=True)
        (folder / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        (folder / "tests" / "alerts_test.yml").write_text(yaml.safe_dump(tested, sort_keys=False))
        result = run_rule_tests(folder / "tests" / "alerts_test.yml")
        assert result.returncode != 0, f"{name} with for {for_s + shift_s}s still passes its tests"
        assert name in result.stdout + result.stderr


def test_alertmanager_config_checks() -> None:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if not Path(amtool).exists():
        pytest.fail("`amtool` not found: install Debian's prometheus-alertmanager package "
                    "(scripts/test-services.sh does)", pytrace=False)
    result = subprocess.run([amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_sends_to_the_alertmanager_it_scrapes() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    senders = {t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]}
    scraped = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert senders == {"alertmanager:9093"} and senders <= scraped
