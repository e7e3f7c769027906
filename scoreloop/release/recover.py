"""When a release fails, put everything back by itself.

1. The service: if the failed version is live, the previous colour serves again
   (:func:`scoreloop.release.rollback.rollback`); a failure before the switch left the previous
   deployment serving, so there is nothing to do.
2. The registry: if the failed version still holds ``prod``, ``prod`` goes back to the previous
   champion (:func:`pipelines.registry.rollback`) and that tag is pushed to the registry remote.
3. An alert (``deploy_failed``) saying what failed, what serves, and who is champion now.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.alerts import Alert, alert_sinks, send_alert
from pipelines.errors import ScoreloopError
from pipelines.registry import TagPush, champion_version
from pipelines.registry import rollback as registry_rollback
from pipelines.settings import Settings, get_settings
from scoreloop.release.errors import ReleaseError
from scoreloop.release.resolve import sync_registry
from scoreloop.release.rollback import RollbackResult, rollback
from scoreloop.release.state import default_deploy_dir, load_state


@dataclass(frozen=True)
class Recovery:
    failed_version: str
    service: RollbackResult | None
    serving_version: str | None
    champion: str | None
    push: TagPush | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _live_version(deploy_dir: Path) -> str | None:
    state = load_state(deploy_dir)
    slot = state.slot(state.live)
    return slot.model_version if slot else None


def recover(
    failed_version: str,
    *,
    reason: str,
    settings: Settings | None = None,
    deploy_dir: Path | None = None,
) -> Recovery:
    """Roll the service and the registry back from ``failed_version``; alert. Never raises for
    a step that fails: it is listed in ``problems`` (and the alert), the other steps still run."""
    settings = settings or get_settings()
    deploy_dir = deploy_dir or default_deploy_dir()
    problems: list[str] = []
    service = None
    try:
        if _live_version(deploy_dir) == failed_version:
            service = rollback(deploy_dir=deploy_dir)
    except ReleaseError as exc:
        problems.append(f"service rollback: {exc}")
    push = None
    try:
        sync_registry(settings)
        found = champion_version(settings)
        if found is not None and found[0] == failed_version:
            ref = registry_rollback(settings, reason=f"deploy of {failed_version} failed: {reason}")
            push = ref.push
            if push is not None and not push.ok:
                problems.append(f"registry push: {push.describe()}")
    except (ReleaseError, ScoreloopError) as exc:
        problems.append(f"registry rollback: {exc}")
    serving = _live_version(deploy_dir)
    found = champion_version(settings)
    champion = found[0] if found else None
    send_alert(
        Alert(
            kind="deploy_failed",
            severity="error",
            title=f"deploy of {settings.model_name} {failed_version} failed and was rolled back",
            message=(
                f"{reason}. Serving {serving or 'nothing'}; champion (prod) {champion or 'none'}."
                + (f" Needs a person: {'; '.join(problems)}" if problems else "")
            ),
            details={
                "failed_version": failed_version,
                "serving_version": serving,
                "champion": champion,
                "service_rolled_back": service is not None,
                "pushed": push.pushed if push else [],
                "problems": problems,
            },
        ),
        alert_sinks(settings),
    )
    return Recovery(failed_version, service, serving, champion, push, problems)
