"""The alerting rules shipped in deploy/prometheus: valid (``promtool check rules``, ``check
config``), their unit tests pass (``promtool test rules``), those tests bite (a loosened threshold
fails them), and every series the rules read is one the service exposes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.serving import Scrape

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "rules.yml"
RULES_TEST = RULES_DIR / "rules_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's promtool (package ``prometheus``; ``make promtool`` installs it as root)."""
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (Debian package prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must install it with `make promtool`")
        pytest.skip(f"{reason}; install it with `make promtool` (as root)")
    return found


def _run(*args: str | Path, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_rules_and_config_are_valid(promtool: str) -> None:
    checked = _run(promtool, "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 13 rules found" in checked.stdout
    config = _run(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    tested = _run(promtool, "test", "rules", RULES_TEST)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_rule_unit_tests_fail_on_a_loosened_threshold(promtool: str, tmp_path: Path) -> None:
    """The unit tests pin each threshold: 5xx at 10% instead of 1% no longer fires on 4.8%."""
    text = RULES.read_text()
    rule = "scoreloop:http_5xx:ratio_rate5m > "
    loosened = text.replace(rule + "0.01", rule + "0.1")
    assert loosened != text
    (tmp_path / "rules.yml").write_text(loosened)
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    tested = _run(promtool, "test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "ScoreloopHigh5xxRate" in tested.stdout + tested.stderr


def test_every_series_the_rules_read_is_exposed(client: TestClient) -> None:
    """A metric renamed in serving/metrics.py would silence its alert: every ``scoreloop_*``
    name in rules.yml is one the service's /metrics has (a histogram counts by its buckets)."""
    used = set(re.findall(r"\bscoreloop_[a-z0-9_]+", RULES.read_text()))
    assert len(used) >= 6
    client.get("/healthz")
    names = {sample.name for sample in Scrape(client.get("/metrics").text).samples}
    assert used - names == set()
