"""`make cicd` in the test suite: the whole loop on this machine (real training, real tags pushed
to a bare origin, deploy.yml run by act, real containers behind the haproxy front)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoreloop.release.rehearsal import rehearse


@pytest.mark.slow
def test_cicd_rehearsal_deploys_and_rolls_a_broken_release_back(
    container_ready: None, release_root: Path
) -> None:
    result = rehearse(release_root / "cicd")
    v1, v2, v3 = result.versions
    assert len({v1, v2, v3}) == 3
    assert result.served_after_deploy == v2  # the promoted version serves after deploy.yml
    assert result.failed_requests == 0  # across both rollouts and the rollback
    assert result.served_after_rollback == v2  # the broken v3 never replaced it
    assert result.origin_champion == v2  # prod reassigned, and that tag pushed to the origin
    assert "deploy_failed" in result.alert_kinds and result.rollbacks == 1
    assert result.line.startswith("cicd: ok deploys=2 rollbacks=1 failed_requests=0 lead_time_s=")
