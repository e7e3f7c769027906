"""``make cicd``: the whole CI/CD loop rehearsed on this machine, against a local bare origin.

1. Tiny real data (two ACS years, eight batches) is landed and ingested; a first champion (a few
   CatBoost trees) is trained, promoted (its tags pushed to the bare origin), rescored and
   deployed blue/green behind the haproxy front.
2. A challenger (more trees) is trained and promoted: its ``<model>#prod#<n>`` tag is pushed;
   the population is rescored; ``.github/workflows/deploy.yml`` runs under ``act`` for that tag's
   push event, while a lookup load runs through the front. The new version must answer with no
   failed request.
3. A third version is promoted and its model artifact then corrupted in the DVC remote; deploy.yml
   runs for its tag, fails, and its rollback job puts everything back: the previous version keeps
   serving, prod is reassigned in the origin, and an alert is written.

Ends with ``cicd: ok deploys=N rollbacks=N failed_requests=N lead_time_s=...``; lead time is from
the prod tag's push to the new version answering through the front.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import yaml

from pipelines.alerts import alerts_path
from pipelines.deployment_repo import git
from pipelines.ingest import ingest_file
from pipelines.settings import BUNDLED_SPEC, PROJECT_ROOT, Settings, get_settings
from pipelines.simulate import simulate
from pipelines.spec import load_spec
from scoreloop.release.errors import ReleaseError
from scoreloop.release.load import LookupLoad

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "deploy.yml"
STAND_INS = PROJECT_ROOT / ".github" / "act"
#: Wheels and build contexts survive between rehearsals (and are shared with the release tests).
BUILD_CACHE = Path(tempfile.gettempdir()) / "scoreloop-test-build"
ACS = BUNDLED_SPEC.parent / "employment_MA.parquet"


@dataclass(frozen=True)
class RehearsalResult:
    deploys: int
    rollbacks: int
    failed_requests: int
    lead_time_s: float
    served_after_deploy: str
    served_after_rollback: str
    origin_champion: str | None
    alert_kinds: list[str]
    versions: tuple[str, str, str]

    @property
    def line(self) -> str:
        return (
            f"cicd: ok deploys={self.deploys} rollbacks={self.rollbacks} "
            f"failed_requests={self.failed_requests} lead_time_s={self.lead_time_s}"
        )


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("SCORELOOP_")]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _params(root: Path, iterations: int) -> Path:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["split"].update(
        {"window_batches": 8, "validation_batches": 1, "holdout_batches": 2, "min_rows": 100}
    )
    params["training"].update({"iterations": iterations, "depth": 3, "baseline_iterations": 5})
    params["gate"].update({"absolute_floor": 0.6, "slice_min_rows": 100})
    params["scoring"]["thread_count"] = 2
    path = root / f"params-{iterations}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _land_and_ingest(settings: Settings, root: Path) -> None:
    spec = load_spec(settings.spec_path)
    frame = pl.read_parquet(ACS)
    years = sorted(frame["year"].unique().to_list())[:2]
    sample = pl.concat(
        [frame.filter(pl.col("year") == y).sample(n=2500, seed=i) for i, y in enumerate(years)]
    )
    source = root / "source.parquet"
    sample.write_parquet(source)
    landed = simulate(spec, source, settings.landing, seed=5, batches_per_period=4, label_lag=0)
    for path in landed.files:
        ingest_file(path, spec, settings.tables, max_reject_rate=0.05)


def _promote(settings: Settings, root: Path, iterations: int, log: Callable[[str], None]) -> str:
    """Train a challenger through the real chain; promote it (forced only if the gate refuses:
    the rehearsal is about the deploy, not the gate) and return its version."""
    from pipelines.promote import promote_version, train_all

    os.environ["SCORELOOP_PARAMS_PATH"] = str(_params(root, iterations))
    run = train_all(get_settings())
    version = run.promotion.version
    if run.promotion.champion is None:
        log(f"gate refused {version} ({'; '.join(run.promotion.decision.reasons)}): forcing it")
        promote_version(get_settings(), version, force=True, reason="cicd rehearsal")
    push = run.promotion.champion.push if run.promotion.champion else None
    if push is not None and not push.ok:
        raise ReleaseError(f"the promotion of {version} was not pushed: {push.describe()}")
    return version


def _rescore() -> None:
    from pipelines.rescore import rescore_population

    rescore_population()


def _prod_tag(origin: Path, model: str) -> str:
    tags = git(origin, "tag", "--list", f"{model}#prod#*", "--sort=-creatordate").split()
    if not tags:
        raise ReleaseError(f"no prod tag of {model} in {origin}")
    return tags[0]


def _corrupt_model_in_remote(settings: Settings, version: str) -> Path:
    """Overwrite ``version``'s model file in the DVC remote (a deliberately broken release)."""
    from pipelines.deployment_repo import MODEL_PATH
    from pipelines.model_bundle import MODEL_FILE
    from pipelines.registry import version_commit

    repo, commit = settings.registry, version_commit(settings, version)
    lock = yaml.safe_load(git(repo, "show", f"{commit}:dvc.lock"))
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])]
    dir_md5 = next(str(o["md5"]) for o in outs if o["path"] == MODEL_PATH)
    objects = Path(settings.remote) / "files" / "md5"
    entries = json.loads((objects / dir_md5[:2] / dir_md5[2:]).read_text())
    md5 = next(str(e["md5"]) for e in entries if e["relpath"] == MODEL_FILE)
    target = objects / md5[:2] / md5[2:]
    target.chmod(0o644)
    target.write_bytes(b"corrupted in the DVC remote by the cicd rehearsal")
    return target


def _act(tag: str, env: dict[str, str], secrets: dict[str, str], log_file: Path) -> int:
    event = log_file.with_suffix(".event.json")
    event.write_text(json.dumps({"ref": f"refs/tags/{tag}"}))
    act = Path(sys.executable).parent / "act"
    args = [
        str(act),
        "push",
        "-e",
        str(event),
        "-W",
        str(WORKFLOW),
        "-P",
        "ubuntu-latest=-self-hosted",
    ]
    for action, sha, folder in (
        ("actions/setup-python", "a26af69be951a213d495a4c3e4e4022e16d87065", "setup-python"),
        ("astral-sh/setup-uv", "e92bafb6253dcd438e0484186d7669ea7a8ca1cc", "setup-uv"),
    ):
        args += ["--local-repository", f"{action}@{sha}={STAND_INS / folder}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    for name, value in secrets.items():
        args += ["--secret", f"{name}={value}"]
    with log_file.open("w") as out:
        proc = subprocess.run(
            args, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=1800
        )
    return proc.returncode


class _FirstAnswer:
    """Polls the front's /model until it names ``version``; keeps the time it first did."""

    def __init__(self, url: str, version: str) -> None:
        self.url, self.version = url, version
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as http:
            while not self._stop.is_set():
                try:
                    if http.get("/model").json().get("version") == self.version:
                        self.at = time.time()
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.1)

    def __enter__(self) -> _FirstAnswer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _served(url: str) -> str:
    return str(httpx.get(f"{url}/model", timeout=5.0).json().get("version"))


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def rehearse(root: Path | None = None, *, log: Callable[[str], None] = _say) -> RehearsalResult:
    """Run the loop (see the module doc) under ``root`` and check every promise on the way.

    Raises:
        ReleaseError: a step of the loop did not do what it must (the message says which, with
            the tail of the act log where the workflow is involved).
    """
    from pipelines.registry import champion_version
    from scoreloop.release.build import build_image
    from scoreloop.release.fetch import fetch
    from scoreloop.release.resolve import sync_registry
    from scoreloop.release.rollout import rollout, teardown
    from scoreloop.serve_process import free_port

    root = root or Path(tempfile.mkdtemp(prefix="scoreloop-cicd-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the image's user reads the mounted releases under it
    origin = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    deploy_dir = root / "deploy"
    env = {
        "SCORELOOP_STATE_ROOT": str(root / "state"),
        "SCORELOOP_REGISTRY_REMOTE": str(origin),
        "SCORELOOP_DEPLOY_DIR": str(deploy_dir),
        "SCORELOOP_BUILD_DIR": str(BUILD_CACHE),
    }
    # The deploy job: same state (tables, snapshots, deploy dir, alerts), its own registry
    # clone from the origin, like a fresh runner.
    job_env = {
        **{k: v for k, v in env.items() if k != "SCORELOOP_REGISTRY_REMOTE"},
        "SCORELOOP_REGISTRY_REPO": str(root / "ci-registry"),
    }
    job_secrets = {"SCORELOOP_REGISTRY_REMOTE": str(origin)}
    with _environment(env):
        settings = get_settings()
        try:
            started = time.perf_counter()
            _land_and_ingest(settings, root)
            v1 = _promote(settings, root, 5, log)
            _rescore()
            first = fetch(v1)
            image = build_image(first.bundle_dir, first.snapshot_dir)
            live = rollout(
                image.image,
                first.snapshot_dir,
                name="scoreloop-cicd",
                front_port=free_port(),
            )
            took = time.perf_counter() - started
            log(f"champion {v1} deployed on {live.front_url} ({took:.0f} s)")
            from pipelines.snapshot import SCORES_FILE, current_id

            snap = first.snapshot_dir / str(current_id(first.snapshot_dir)) / SCORES_FILE
            ids = pl.read_ipc(snap)["entity_id"].head(200).to_list()

            with LookupLoad(live.front_url, ids) as load:
                v2 = _promote(settings, root, 60, log)
                pushed_at = time.time()
                tag2 = _prod_tag(origin, settings.model_name)
                log(f"challenger {v2} promoted, {tag2} pushed to {origin}")
                _rescore()
                with _FirstAnswer(live.front_url, v2) as first_answer:
                    code = _act(tag2, job_env, job_secrets, root / "act-deploy.log")
                if code != 0:
                    raise ReleaseError(
                        f"deploy.yml for {tag2} failed (act exit {code}):\n"
                        + _tail(root / "act-deploy.log")
                    )
                served_after_deploy = _served(live.front_url)
                if served_after_deploy != v2 or first_answer.at is None:
                    raise ReleaseError(f"after deploy.yml the front serves {served_after_deploy}")
                lead = round(first_answer.at - pushed_at, 1)
                log(f"{v2} serving {lead} s after {tag2} was pushed")

                v3 = _promote(settings, root, 120, log)
                tag3 = _prod_tag(origin, settings.model_name)
                _rescore()
                broken = _corrupt_model_in_remote(settings, v3)
                log(f"{v3} promoted ({tag3}); its model corrupted in the DVC remote: {broken}")
                code = _act(tag3, job_env, job_secrets, root / "act-broken.log")
                if code == 0:
                    raise ReleaseError(f"deploy.yml for the broken {tag3} succeeded")
                served_after_rollback = _served(live.front_url)
            result = load.result()
            # What a fresh runner sees: a clone of the origin (tags only, newest checked out).
            check = settings.model_copy(update={"registry_repo": root / "origin-check"})
            found = champion_version(sync_registry(check))
            origin_champion = found[0] if found else None
            kinds = [json.loads(x)["kind"] for x in alerts_path(settings).read_text().splitlines()]
            rollbacks = 1 if "rolled back from" in (root / "act-broken.log").read_text() else 0
        finally:
            try:
                teardown(deploy_dir)
            except ReleaseError as exc:
                log(f"teardown: {exc}")
    outcome = RehearsalResult(
        deploys=2,
        rollbacks=rollbacks,
        failed_requests=result.failed,
        lead_time_s=lead,
        served_after_deploy=served_after_deploy,
        served_after_rollback=served_after_rollback,
        origin_champion=origin_champion,
        alert_kinds=kinds,
        versions=(v1, v2, v3),
    )
    problems = [
        *([f"{result.failed} failed requests: {result.failures[:3]}"] if result.failed else []),
        *(
            [f"serving {served_after_rollback} after the rollback, not {v2}"]
            if served_after_rollback != v2
            else []
        ),
        *(
            [f"the origin's champion is {origin_champion}, not {v2}"]
            if origin_champion != v2
            else []
        ),
        *(["no deploy_failed alert"] if "deploy_failed" not in kinds else []),
        *(["the rollback job did not run"] if not rollbacks else []),
    ]
    if problems:
        raise ReleaseError("cicd rehearsal: " + "; ".join(problems) + f" (logs in {root})")
    shutil.rmtree(root / "origin-check", ignore_errors=True)
    return outcome


def main() -> int:
    try:
        result = rehearse()
    except ReleaseError as exc:
        _say(f"cicd: FAILED {exc}")
        return 1
    _say(result.line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
