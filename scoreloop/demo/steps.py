"""The demo's steps, in order (:data:`STEPS`): each a function of the shared :class:`DemoContext`
that runs real code (Dagster in-process through :mod:`assets.runner`, ``scoreloop serve`` as a
process) and returns its summary block (:mod:`scoreloop.demo.render`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import typer
import yaml
from rich.console import Console, Group, RenderableType
from rich.table import Table

from assets import runner
from pipelines.alerts import alerts_path
from pipelines.ingest import VALIDATED, accepted_batches, parse_landing_name
from pipelines.params import Params
from pipelines.settings import BUNDLED_SPEC, Settings
from pipelines.simulate import (
    TMP_PREFIX,
    SimulationResult,
    load_source,
    plan_batches,
    simulate,
)
from pipelines.snapshot import SnapshotManifest, read_current
from pipelines.spec import DatasetSpec
from pipelines.tables import scan_table, table_uri
from scoreloop.demo import render
from scoreloop.demo.state import ensure_dagster_home
from scoreloop.serve_process import ServiceProcess, ServiceStartError

#: Faults the demo injects (batch id -> simulator faults), early enough to show with ``--limit 8``:
#: a batch with a few bad rows (accepted, quarantine non-empty), a batch refused as a whole by the
#: blocking reject-rate check, and a file that cannot be read (its run fails, nothing else does).
#: :func:`fault_plan` adds ``drift`` at the first batch of the live step.
DEMO_FAULTS: dict[str, list[str]] = {
    "2015-03": ["corrupt_rows", "nulls"],
    "2015-05": ["wrong_types"],
    "2015-07": ["truncated_file"],
}
SOURCE = BUNDLED_SPEC.parent / "employment_MA.parquet"
#: The newest batches of a run land one by one in the live step, drifting from the first of them
#: (with the default monitoring knobs: drift seen at once, retraining requested at the eighth,
#: once 6 labelled batches of the drifted data exist, labels landing 2 batches late).
LIVE_BATCHES = 8
#: Tag of every run the demo itself launches for a step (the live step's retraining run carries
#: the staleness sensor's tags instead).
STEP_TAG = "scoreloop/demo_step"


def live_batches(batches: Sequence[str], first_period: int) -> list[str]:
    """The batches the live step lands: the newest :data:`LIVE_BATCHES`, when a whole first
    period (the first champion's data) comes before them; none otherwise."""
    if len(batches) < first_period + LIVE_BATCHES:
        return []
    return list(batches[-LIVE_BATCHES:])


def fault_plan(batches: Sequence[str], live: Sequence[str]) -> dict[str, list[str]]:
    """The demo's faults for the batches it lands: :data:`DEMO_FAULTS` and ``drift`` from the
    first live batch on."""
    plan = {b: list(f) for b, f in DEMO_FAULTS.items() if b in batches}
    if live:
        plan.setdefault(live[0], []).append("drift")
    return plan


@dataclass
class DemoContext:
    """What the steps share: settings, inputs, and each step's results for later steps."""

    settings: Settings
    spec: DatasetSpec
    params: Params
    console: Console
    limit: int | None = None
    #: Dask workers for the per-batch runs (ingest, scoring): 0 runs them in this process
    #: (``scoreloop demo --scale`` sets 2; :func:`assets.distributed.backfill`).
    workers: int = 0
    simulation: SimulationResult | None = None
    results: dict[str, Any] = field(default_factory=dict)
    #: One line per step for the final summary (step name -> outcome).
    headlines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    name: str
    title: str
    run: Callable[[DemoContext], RenderableType | None]


def _stop(ctx: DemoContext, message: str, run: runner.BatchRun | None = None) -> int:
    """Print why the demo stops (and the run's errors); the exit code for ``typer.Exit``."""
    ctx.console.print(f"[red]demo stopped:[/red] {message}")
    for error in run.errors if run is not None else []:
        ctx.console.print(f"  {error}")
    return 1


def simulate_step(ctx: DemoContext) -> RenderableType:
    """Simulate the stream of monthly batch and label files (with a few faults and, for the live
    step, drift), and land all but its newest batches (those land one by one in the live step)."""
    knobs = ctx.params.simulate
    ids = [
        batch_id
        for batch_id, _ in plan_batches(
            load_source(ctx.spec, SOURCE),
            ctx.spec,
            seed=knobs.seed,
            batches_per_period=knobs.batches_per_period,
        )
    ][: ctx.limit]
    live = live_batches(ids, knobs.batches_per_period)
    faults = fault_plan(ids, live)
    stream_dir = ctx.settings.state_root / "demo" / "stream"
    with render.progress(ctx.console) as progress:
        task = progress.add_task("simulating the stream", total=None, note="")
        stream = simulate(
            ctx.spec,
            SOURCE,
            stream_dir,
            seed=knobs.seed,
            batches_per_period=knobs.batches_per_period,
            label_lag=knobs.label_lag,
            faults=faults,
            limit=ctx.limit,
            on_file=lambda path: progress.update(task, advance=1, note=path.name),
        )
    initial = [b for b in stream.batches if b not in live]
    files = [
        land_file(path, ctx.settings.landing) for path in stream.files if batch_of(path) in initial
    ]
    ctx.results["stream"] = stream
    ctx.results["live"] = live
    ctx.simulation = SimulationResult(
        batches=initial,
        files=files,
        rows={b: stream.rows[b] for b in initial},
        faults={b: f for b, f in stream.faults.items() if b in initial},
    )
    ctx.headlines["simulate"] = f"{len(initial)} batches + labels landed" + (
        f", {len(live)} more streamed in the live step (drift from {live[0]})" if live else ""
    )
    lines = [
        f"landed {len(initial)} batches ({initial[0]} .. {initial[-1]}) and their labels in "
        f"{ctx.settings.landing}; faults: "
        + ", ".join(f"{b}={'+'.join(f)}" for b, f in DEMO_FAULTS.items() if b in initial)
    ]
    if live:
        lines.append(
            f"held back for the live step: {live[0]} .. {live[-1]} ({len(live)} batches, simulated "
            f"in {stream_dir}), with the `drift` fault from {live[0]} on (covariate shift + "
            "concept shift, pipelines.simulate.apply_drift)"
        )
    return Group(*lines)


def batch_of(path: Path) -> str | None:
    """The batch id of a landing file name (``batch_<id>.<ext>`` or ``labels_<id>.parquet``)."""
    parsed = parse_landing_name(path)
    return parsed[1] if parsed else None


def land_file(path: Path, landing: Path) -> Path:
    """Copy a simulated file into the landing folder atomically (a sensor never sees half)."""
    landing.mkdir(parents=True, exist_ok=True)
    target = landing / path.name
    tmp = landing / f"{TMP_PREFIX}{path.name}"
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)
    return target


def ingest_batches(
    home: Path,
    plan: list[tuple[str, bool, bool]],
    *,
    workers: int = 0,
    on_done: Callable[[runner.BatchRun], None] | None = None,
) -> Sequence[runner.BatchRun]:
    """Ingest ``(batch, records?, labels?)`` partitions: in this process, or (``workers``) as
    parallel partition runs on that many Dask workers (records for every planned batch)."""
    if not workers:
        return runner.ingest_batches(home, plan, on_done=on_done)
    from assets.distributed import backfill

    labelled = {batch for batch, _, labels in plan if labels}
    batches = [batch for batch, _, _ in plan]
    return backfill(home, batches, score=False, labels=labelled, workers=workers, on_done=on_done)


def score_batches(home: Path, batches: list[str], *, workers: int = 0) -> None:
    """At scale, every accepted batch scored by the champion on the workers first (the
    snapshot run then finds nothing left to score); in process, the snapshot run scores."""
    if not workers or not batches:
        return
    from assets.distributed import backfill

    runs = backfill(home, batches, score=True, records=False, workers=workers)
    failed = [f"{r.batch_id}: {'; '.join(r.errors)}" for r in runs if not r.success]
    if failed:
        raise RuntimeError(f"scoring on the workers failed: {failed}")


def ingest_step(ctx: DemoContext) -> RenderableType:
    """Materialise raw_batch, validated_batch, quarantine and labels for every landed batch."""
    assert ctx.simulation is not None, "the ingest step runs after the simulate step"
    landed = {path.name for path in ctx.simulation.files}
    plan = [
        (b, True, any(name.startswith(f"labels_{b}.") for name in landed))
        for b in ctx.simulation.batches
    ]
    home = ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url)
    with render.progress(ctx.console) as progress:
        task = progress.add_task("ingesting batches", total=len(plan), note="")

        def done(run: runner.BatchRun) -> None:
            note = "ok" if run.success else "[red]failed[/red]"
            if run.failed_checks:
                note = "[yellow]refused[/yellow]"
            progress.update(task, advance=1, note=f"{run.batch_id} {note}")

        runs = ingest_batches(home, plan, workers=ctx.workers, on_done=done)
    ctx.results["ingest_runs"] = runs
    # a refused batch's run succeeds with a failed check; a failed batch's run fails
    refused = sum(1 for r in runs if r.failed_checks)
    failed = sum(1 for r in runs if not r.success and not r.failed_checks)
    ctx.headlines["ingest"] = (
        f"{len(runs) - refused - failed} accepted, {refused} refused, {failed} failed"
    )
    return render.ingest_summary(ctx.settings.tables, len(runs))


def first_period_end(ctx: DemoContext) -> str:
    """The last batch of the first period (``2015-12`` for the bundled data)."""
    assert ctx.simulation is not None, "the training steps run after the simulate step"
    batches = ctx.simulation.batches
    return batches[min(ctx.params.simulate.batches_per_period, len(batches)) - 1]


def params_until(settings: Settings, until: str) -> Path:
    """A copy of the params file with ``split.until`` set (under the state root)."""
    raw = yaml.safe_load(Path(settings.params_path).read_text()) or {}
    raw.setdefault("split", {})["until"] = until
    path = settings.state_root / "demo" / f"params.until-{until}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def champion_step(ctx: DemoContext) -> RenderableType:
    """The first champion: trained on the first period only (the 2015 batches)."""
    from pipelines.registry import resolve_champion

    until = first_period_end(ctx)
    params_path = params_until(ctx.settings, until)
    with render.working(ctx.console, f"training the first champion on batches up to {until} ..."):
        run = runner.run_retraining(
            ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url),
            params_path=params_path,
            tags={"scoreloop/demo_step": "first-champion"},
        )
    summary, outcome = render.retraining_summary(ctx.settings, run)
    ctx.headlines["champion"] = f"{outcome['headline']}, trained up to {until}"
    champion = resolve_champion(ctx.settings)
    if champion is None:
        raise typer.Exit(_stop(ctx, "no champion after the first training run", run))
    ctx.results["first_champion"] = champion.version
    return Group(
        f"window capped at split.until={until} (params copy {params_path})",
        summary,
        f"champion: {champion.name} {champion.version}; model dir {champion.model_dir}",
        f"model card: {champion.model_dir / 'card.md'}  (with evaluation and gate: "
        f"`scoreloop model show {champion.version}`, or the champion asset in the UI)",
    )


def snapshot_rows(settings: Settings, manifest: SnapshotManifest) -> pl.DataFrame:
    return pl.read_ipc(settings.snapshots / manifest.snapshot_id / "scores.arrow")


def published(ctx: DemoContext, run: runner.BatchRun, before: SnapshotManifest | None) -> Group:
    """Check the scoring run published a snapshot, record it (and an entity to look up later)."""
    from pipelines.scores_table import scores_uri

    manifest = read_current(ctx.settings.snapshots)
    if manifest is None or not run.success:
        raise typer.Exit(_stop(ctx, "no serving snapshot was published", run))
    scored = (
        scan_table(scores_uri(ctx.settings))
        .filter(pl.col("model_version") == manifest.model_version)
        .select("batch_id")
        .collect()
    )
    rows = snapshot_rows(ctx.settings, manifest)
    ctx.results["snapshot"] = manifest
    ctx.results["scored_rows"] = scored.height
    ctx.results["lookup"] = rows.sample(1, seed=ctx.params.simulate.seed).row(0, named=True)
    return render.publish_summary(
        run,
        manifest,
        before,
        scores_table=scores_uri(ctx.settings),
        scored=scored,
        rows=rows,
        sample=rows.sample(4, seed=ctx.params.simulate.seed),
    )


def score_step(ctx: DemoContext) -> RenderableType:
    """Score every accepted batch with the champion and publish the serving snapshot."""
    before = read_current(ctx.settings.snapshots)
    home = ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url)
    with render.working(ctx.console, "scoring every accepted batch (with SHAP reasons) ..."):
        score_batches(home, accepted_batches(ctx.settings.tables, "records"), workers=ctx.workers)
        run = runner.publish_snapshot(home, tags={"scoreloop/demo_step": "score"})
    summary = published(ctx, run, before)
    manifest = ctx.results["snapshot"]
    ctx.headlines["score"] = (
        f"{ctx.results['scored_rows']:,} rows in the scores table by {manifest.model_version}, "
        f"snapshot of {manifest.row_count:,} entities"
    )
    return summary


def challenger_step(ctx: DemoContext) -> RenderableType:
    """A challenger on the newest labelled batches vs the champion; rescore if promoted."""
    from pipelines.registry import resolve_champion

    previous = resolve_champion(ctx.settings)
    home = ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url)
    newer = labelled_since_champion(ctx.settings)
    if previous is not None and newer == 0:
        ctx.headlines["challenger"] = f"skipped: no labelled batch newer than {previous.version}"
        return (
            f"no labelled batch is newer than {previous.version}'s training data: a challenger "
            "would learn from the same batches (the live step retrains when drift arrives)"
        )
    with render.working(ctx.console, "training a challenger on the newest labelled batches ..."):
        run = runner.run_retraining(home, tags={"scoreloop/demo_step": "challenger"})
    summary, outcome = render.retraining_summary(ctx.settings, run)
    champion = resolve_champion(ctx.settings)
    ctx.results["challenger"] = outcome
    ctx.headlines["challenger"] = outcome["headline"]
    if not outcome["promoted"] or champion is None:
        return Group(
            summary,
            f"the champion stays {previous.version if previous else None}; the snapshot is "
            "unchanged",
        )
    rescored, swap = rescore_population(ctx, home, previous.version if previous else None)
    ctx.headlines["challenger"] = f"{outcome['headline']}; {swap}"
    return Group(summary, rescored)


def labelled_since_champion(settings: Settings) -> int | None:
    """Accepted labelled batches newer than the champion's training data (None: no champion or
    unknown)."""
    from pipelines.monitoring import batches_since_training, current_champion

    champion = current_champion(settings)
    if champion is None:
        return None
    return batches_since_training(champion.metadata, accepted_batches(settings.tables, "labels"))


def rescore_population(
    ctx: DemoContext, home: Path, previous: str | None
) -> tuple[RenderableType, str]:
    """After a promotion: ``champion_rescore_sensor`` evaluated once and the scoring run it
    requests (rescore every accepted batch, publish the snapshot); its summary and the swap."""
    from pipelines.registry import resolve_champion

    champion = resolve_champion(ctx.settings)
    assert champion is not None, "rescore_population runs after a promotion"
    request = runner.rescore_request(home, previous)
    if request is None:
        raise typer.Exit(_stop(ctx, "the rescore sensor did not react to the promotion"))
    before = read_current(ctx.settings.snapshots)
    with render.working(ctx.console, f"rescoring the population with {champion.version} ..."):
        rescore = runner.publish_snapshot(home, tags=dict(request.tags))
    rescored = published(ctx, rescore, before)
    swap = f"snapshot {before.model_version if before else None} -> {champion.version}"
    return (
        Group(
            f"champion_rescore_sensor: champion {previous} -> {champion.version}, requested a "
            f"scoring run of serving_snapshot (run key {request.run_key})",
            rescored,
        ),
        swap,
    )


def monitor_step(ctx: DemoContext) -> RenderableType:
    """Drift and realised performance of the newest batches, then the staleness verdict."""
    from pipelines.drift import read_drift
    from pipelines.performance import read_performance
    from pipelines.registry import resolve_champion
    from pipelines.staleness import staleness

    batches = accepted_batches(ctx.settings.tables, "records")[-3:]
    with render.working(ctx.console, f"drift and performance of {', '.join(batches)} ..."):
        runs = runner.monitor_batches(
            ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url), batches
        )
    champion = resolve_champion(ctx.settings)
    version = champion.version if champion else ""
    drift = read_drift(ctx.settings).filter(
        pl.col("model_version") == version, pl.col("batch_id").is_in(batches)
    )
    performance = read_performance(ctx.settings).filter(
        pl.col("model_version") == version, pl.col("batch_id").is_in(batches)
    )
    decision = staleness(ctx.settings)
    if decision is not None:
        why = ", ".join(reason.split(":")[0] for reason in decision.reasons)
        verdict_text = f"stale ({why})" if decision.stale else "fresh"
        ctx.headlines["monitor"] = f"{version} is {verdict_text}"
    path = alerts_path(ctx.settings)
    return render.monitor_summary(
        runs,
        drift,
        performance,
        version=version,
        decision=decision,
        alerts_file=path,
        alerts=len(path.read_text().splitlines()) if path.exists() else 0,
    )


STALENESS_SENSOR = "staleness_sensor"


def live_files(stream: SimulationResult, batch_id: str) -> list[Path]:
    """The stream's files that land with ``batch_id``: its records file, then the label files
    due after it (``label_lag`` batches late), up to the next batch's records file."""
    files = stream.files
    start = next(i for i, p in enumerate(files) if p.name.startswith(f"batch_{batch_id}."))
    out = [files[start]]
    for path in files[start + 1 :]:
        if path.name.startswith("batch_"):
            break
        out.append(path)
    return out


def live_step(ctx: DemoContext) -> RenderableType:
    """The loop closing by itself: drifted batches land one by one; each is ingested, scored and
    monitored, then the real ``staleness_sensor`` is ticked on the instance as the daemon would;
    the retraining run it requests goes through the gate, a promotion is rescored by
    ``champion_rescore_sensor`` and the snapshot swaps. No command typed."""
    from pipelines.drift import read_drift
    from pipelines.performance import read_performance
    from pipelines.registry import resolve_champion

    live: list[str] = ctx.results.get("live") or []
    stream: SimulationResult | None = ctx.results.get("stream")
    if not live or stream is None:
        ctx.headlines["live"] = "skipped (too few batches)"
        return (
            f"skipped: the live step needs the first period plus {LIVE_BATCHES} batches "
            "(use a larger --limit)"
        )
    home = ensure_dagster_home(ctx.settings.dagster, ctx.settings.dagster_pg_url)
    table = Table(
        "batch",
        "landed",
        "drifted features",
        "realised AUC",
        "staleness_sensor",
        "seconds",
        title="live: batches landing with the drift fault",
    )
    cursor: str | None = None
    first_champion = resolve_champion(ctx.settings)
    retrain: dict[str, Any] = {}
    blocks: list[RenderableType] = []
    for batch_id in live:
        started = time.perf_counter()
        landed = [land_file(p, ctx.settings.landing) for p in live_files(stream, batch_id)]
        labelled = [b for p in landed if p.name.startswith("labels_") and (b := batch_of(p))]
        plan = [(batch_id, True, False), *((b, False, True) for b in labelled)]
        with render.working(ctx.console, f"{batch_id}: ingest, score, monitor ..."):
            runs = runner.ingest_batches(home, plan)
            champion = resolve_champion(ctx.settings)
            if runs[0].success and not runs[0].failed_checks and champion is not None:
                runner.score_batch(home, batch_id, tags={STEP_TAG: "live"})
            runner.monitor_batches(home, [*labelled, batch_id])
        with render.working(ctx.console, f"{batch_id}: ticking {STALENESS_SENSOR} ..."):
            tick = runner.tick_sensor(home, STALENESS_SENSOR, cursor)
        cursor = tick.cursor
        version = champion.version if champion else ""
        drift = read_drift(ctx.settings, batch_id).filter(
            pl.col("model_version") == version, pl.col("drifted")
        )
        drifted = sorted(
            set(drift["feature"].to_list()) - {"score", "__dataset__"},
        )
        perf = read_performance(ctx.settings).filter(
            pl.col("model_version") == version, pl.col("batch_id").is_in(labelled)
        )
        auc = ", ".join(
            f"{b} {a:.4f}" for b, a in perf.select("batch_id", "roc_auc").iter_rows() if a
        )
        if tick.runs:
            outcome = f"[bold]requested retraining[/bold] (run key {tick.requests[0].run_key})"
        else:
            outcome = tick.skip_reason or "nothing requested"
        table.add_row(
            batch_id,
            ", ".join(p.name for p in landed),
            f"{len(drifted)}: {', '.join(drifted)}" if drifted else "none",
            auc or "-",
            outcome,
            f"{time.perf_counter() - started:.1f}",
        )
        ctx.console.print(f"  {batch_id}: {len(drifted)} drifted features; {outcome}")
        if tick.runs and not retrain:
            run = tick.runs[0]
            summary, result = render.retraining_summary(ctx.settings, run)
            retrain = {**result, "batch": batch_id, "run_id": run.run_id}
            blocks.append(
                Group(
                    f"{STALENESS_SENSOR} at {batch_id}: retraining run {run.run_id[:8]} of job "
                    f"`retraining` (tags: {render.tags_text(tick.requests[0].tags)})",
                    summary,
                )
            )
            if result["promoted"]:
                previous = first_champion.version if first_champion else None
                rescored, swap = rescore_population(ctx, home, previous)
                retrain["swap"] = swap
                blocks.append(rescored)
    ctx.results["live_retrain"] = retrain
    if retrain:
        ctx.headlines["live"] = (
            f"drift from {live[0]}; {STALENESS_SENSOR} requested retraining at {retrain['batch']}: "
            f"{retrain['headline']}" + (f"; {retrain['swap']}" if retrain.get("swap") else "")
        )
    else:
        ctx.headlines["live"] = f"drift from {live[0]}; no retraining requested"
    return Group(table, *blocks)


def record_of(
    settings: Settings, spec: DatasetSpec, entity_id: Any, batch_id: str
) -> dict[str, Any]:
    """The entity's validated record (spec features only), as the JSON /predict takes."""
    frame = (
        scan_table(table_uri(settings.tables, VALIDATED))
        .filter(pl.col("batch_id") == batch_id, pl.col(spec.id.name) == entity_id)
        .select(spec.feature_names)
        .collect()
    )
    return frame.row(0, named=True) if frame.height else {}


def serve_step(ctx: DemoContext) -> RenderableType:
    """Start ``scoreloop serve`` on a free port, look one entity up, score one record, stop it."""
    lookup = ctx.results.get("lookup")
    manifest = read_current(ctx.settings.snapshots)
    if lookup is None or manifest is None:
        return "no snapshot published: nothing to serve"
    log = ctx.settings.state_root / "demo" / "serve.log"
    env = {
        "SCORELOOP_STATE_ROOT": str(ctx.settings.state_root),
        "SCORELOOP_SNAPSHOT_DIR": str(ctx.settings.snapshots),
        "SCORELOOP_SPEC_PATH": str(ctx.settings.spec_path),
        # a real admin token, generated for this run only (never printed)
        "SCORELOOP_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "SCORELOOP_DEV_MODE": "0",
    }
    service = ServiceProcess(
        env,
        "--log-level",
        "warning",
        log=log,
        ready_timeout=90.0,
        stop_timeout=15.0,
        inherit_scoreloop_env=True,
    )
    entity = lookup["entity_id"]
    record = record_of(ctx.settings, ctx.spec, entity, lookup["batch_id"])
    try:
        with render.working(ctx.console, "starting the lookup service on 127.0.0.1"), service:
            served = service.request("GET", f"/scores/{entity}")
            predicted = service.request("POST", "/predict", record)
    except ServiceStartError as exc:
        raise typer.Exit(_stop(ctx, f"the service did not become ready: {exc}")) from exc
    ctx.results["served"] = {"status": served[0], "body": served[1]}
    ctx.results["predicted"] = {"status": predicted[0], "body": predicted[1]}
    ctx.headlines["serve"] = f"GET /scores -> {served[0]}, POST /predict -> {predicted[0]}"
    assert service.ready_seconds is not None, "the service answered, so it was ready"
    return render.serve_summary(
        base_url=service.base_url,
        pid=service.pid,
        ready_seconds=service.ready_seconds,
        snapshot_id=manifest.snapshot_id,
        entity=entity,
        served=served,
        record=record,
        predicted=predicted,
        log=log,
    )


#: The demo, in order. Append a step to extend it.
STEPS: list[DemoStep] = [
    DemoStep("simulate", "Land batches and labels", simulate_step),
    DemoStep("ingest", "Ingest every batch through Dagster", ingest_step),
    DemoStep("champion", "Train the first champion on the first period", champion_step),
    DemoStep("score", "Score every accepted batch, publish the serving snapshot", score_step),
    DemoStep(
        "challenger", "Challenger on the newest labelled batches vs champion", challenger_step
    ),
    DemoStep("monitor", "Drift, realised performance and staleness", monitor_step),
    DemoStep("live", "Live: drift arrives, the loop retrains and redeploys itself", live_step),
    DemoStep("serve", "Serve: one lookup and one prediction over HTTP", serve_step),
]
