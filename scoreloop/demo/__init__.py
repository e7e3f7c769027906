"""``scoreloop demo`` and ``scoreloop ui``: the loop on the bundled data, then the control room.

The demo is a list of steps (:data:`STEPS`), each a function of a shared :class:`DemoContext` that
may return a summary block; add a step by appending to the list:

1. simulate: land the bundled data as monthly batch + label files (with a few faults);
2. ingest: validate every batch through Dagster;
3. champion: train the first champion on the first period (``split.until`` = its last batch),
   evaluate, gate, promote (the ``retraining`` assets);
4. score: score every accepted batch with it and publish the serving snapshot
   (``serving_snapshot``);
5. challenger: retrain on the newest labelled batches, judge it against the champion on the same
   out-of-time holdout; if promoted, the rescore-on-promotion sensor's run publishes a snapshot of
   the new champion;
6. monitor: drift and realised performance of the newest batches, the staleness verdict;
7. serve: start ``scoreloop serve`` on a free port, one lookup and one on-demand prediction.

Everything is written under ``settings.state_root`` (the persistent Dagster instance at
``settings.dagster``), never into the checkout. ``--fresh`` (the default) wipes the state root
first (only after checking it holds nothing but scoreloop state). The Dagster part lives in
``assets.runner``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import typer
import yaml
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from assets import runner
from pipelines.alerts import alerts_path
from pipelines.ingest import (
    QUARANTINE,
    VALIDATED,
    accepted_batches,
    read_ingest_log,
)
from pipelines.params import Params, load_params
from pipelines.settings import BUNDLED_SPEC, PROJECT_ROOT, Settings, get_settings
from pipelines.simulate import SimulationResult, simulate
from pipelines.spec import DatasetSpec, load_spec
from pipelines.tables import read_table, table_uri
from pipelines.validate import QUARANTINE_SCHEMA

if TYPE_CHECKING:
    from pipelines.snapshot import SnapshotManifest

#: Faults the demo injects (batch id -> simulator faults), early enough to show with ``--limit 8``:
#: a batch with a few bad rows (accepted, quarantine non-empty), a batch refused as a whole by the
#: blocking reject-rate check, and a file that cannot be read (its run fails, nothing else does).
DEMO_FAULTS: dict[str, list[str]] = {
    "2015-03": ["corrupt_rows", "nulls"],
    "2015-05": ["wrong_types"],
    "2015-07": ["truncated_file"],
}
SOURCE = BUNDLED_SPEC.parent / "employment_MA.parquet"


@dataclass
class DemoContext:
    """What the steps share: settings, inputs, and each step's results for later steps."""

    settings: Settings
    spec: DatasetSpec
    params: Params
    console: Console
    limit: int | None = None
    simulation: SimulationResult | None = None
    results: dict[str, Any] = field(default_factory=dict)
    #: One line per step for the final summary (step name -> outcome).
    headlines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    name: str
    title: str
    run: Callable[[DemoContext], RenderableType | None]


def ensure_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME folder with an (empty) ``dagster.yaml``: a persistent SQLite instance."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("")
    return path


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )


def simulate_step(ctx: DemoContext) -> RenderableType:
    """Land the bundled data as monthly batch and label files, with a few faults."""
    knobs = ctx.params.simulate
    with _progress(ctx.console) as progress:
        task = progress.add_task("landing files", total=None, note="")
        ctx.simulation = simulate(
            ctx.spec,
            SOURCE,
            ctx.settings.landing,
            seed=knobs.seed,
            batches_per_period=knobs.batches_per_period,
            label_lag=knobs.label_lag,
            faults=DEMO_FAULTS,
            limit=ctx.limit,
            on_file=lambda path: progress.update(task, advance=1, note=path.name),
        )
    sim = ctx.simulation
    ctx.headlines["simulate"] = f"{len(sim.batches)} batches + labels landed"
    return (
        f"landed {len(sim.batches)} batches ({sim.batches[0]} .. {sim.batches[-1]}) and their "
        f"labels in {ctx.settings.landing}; faults: "
        + ", ".join(f"{b}={'+'.join(f)}" for b, f in DEMO_FAULTS.items() if b in sim.batches)
    )


def ingest_step(ctx: DemoContext) -> RenderableType:
    """Materialise raw_batch, validated_batch, quarantine and labels for every landed batch."""
    assert ctx.simulation is not None, "the ingest step runs after the simulate step"
    landed = {path.name for path in ctx.simulation.files}
    plan = [
        (b, True, any(name.startswith(f"labels_{b}.") for name in landed))
        for b in ctx.simulation.batches
    ]
    home = ensure_dagster_home(ctx.settings.dagster)
    with _progress(ctx.console) as progress:
        task = progress.add_task("ingesting batches", total=len(plan), note="")

        def done(run: Any) -> None:
            note = "ok" if run.success else "[red]failed[/red]"
            if run.failed_checks:
                note = "[yellow]refused[/yellow]"
            progress.update(task, advance=1, note=f"{run.batch_id} {note}")

        runs = runner.ingest_batches(home, plan, on_done=done)
    ctx.results["ingest_runs"] = runs
    refused = sum(1 for r in runs if r.failed_checks)
    failed = sum(1 for r in runs if not r.success) - refused
    ctx.headlines["ingest"] = (
        f"{len(runs) - refused - failed} accepted, {refused} refused, {failed} failed"
    )
    return ingest_summary(ctx.settings.tables, len(runs))


def ingest_summary(table_root: str, runs: int) -> RenderableType:
    """Batches, rows accepted / quarantined, top reasons, refused and failed batches."""
    log = read_ingest_log(table_root)
    labels_log = read_ingest_log(table_root, "labels")
    quarantine = read_table(table_uri(table_root, QUARANTINE), schema=QUARANTINE_SCHEMA)
    counts = log.group_by("status").len()
    by_status = dict(zip(counts["status"], counts["len"], strict=True))
    lines = [
        f"{runs} Dagster runs; batches: {by_status.get('accepted', 0)} accepted, "
        f"{by_status.get('refused', 0)} refused, {by_status.get('failed', 0)} failed; "
        f"labels for {labels_log.filter(pl.col('status') == 'accepted').height} batches",
        f"rows accepted: {int(log['accepted'].sum() or 0):,}; "
        f"rows quarantined: {quarantine.height:,}",
    ]
    reasons = Table("column", "check", "rows", "example", title="top quarantine reasons")
    if not quarantine.is_empty():
        top = (
            quarantine.select(pl.col("reasons").explode())
            .unnest("reasons")
            .group_by("column", "check")
            .agg(pl.len().alias("rows"), pl.col("value").first().alias("example"))
            .sort(["rows", "column", "check"], descending=[True, False, False])
            .head(8)
        )
        for column, check, rows, example in top.iter_rows():
            reasons.add_row(column, check, str(rows), str(example)[:60])
    bad = Table("batch", "status", "reason", title="refused / failed batches")
    for row in log.filter(pl.col("status") != "accepted").sort("batch_id").iter_rows(named=True):
        reason = row["error"] or f"reject rate {row['reject_rate']:.1%}"
        bad.add_row(row["batch_id"], row["status"], reason)
    return Group(*lines, reasons, bad, f"tables under {table_root}")


# --- Retraining, scoring, monitoring, serving ---------------------------------------------------

METRICS = ("roc_auc", "pr_auc", "log_loss")
#: Written into the state root by ``--fresh``: a folder holding it may be wiped whatever it holds.
STATE_MARKER = ".scoreloop-state"
#: Entries a scoreloop state root may hold; ``--fresh`` refuses to wipe a folder with others.
STATE_ENTRIES = frozenset(
    {
        "landing",
        "tables",
        "dagster",
        "registry",
        ".registry.lock",
        "dvc-remote",
        "snapshots",
        "model-cache",
        "alerts",
        "monitoring",
        "demo",
        STATE_MARKER,
    }
)


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


def _evaluation(settings: Settings) -> dict[str, Any]:
    path = settings.registry / "evaluation" / "evaluation.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _selection(settings: Settings) -> dict[str, Any]:
    path = settings.registry / "selection.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _span(batches: list[str]) -> str:
    return f"{batches[0]}..{batches[-1]} ({len(batches)})" if batches else "none"


def retraining_summary(settings: Settings, run: Any) -> tuple[RenderableType, dict[str, Any]]:
    """Selection, holdout metrics of every model, threshold and the gate's decision."""
    from pipelines.registry import decisions

    evaluation = _evaluation(settings)
    selection = _selection(settings)
    recorded = decisions(settings)
    decision = recorded[-1] if recorded else {}
    metrics = Table("model", "version", *METRICS, "threshold", title="holdout metrics")
    for role, data in evaluation.get("models", {}).items():
        overall = data.get("overall", {})
        threshold = overall.get("threshold")
        metrics.add_row(
            role,
            data.get("version") or "-",
            *(f"{overall[m]:.4f}" if overall.get(m) is not None else "-" for m in METRICS),
            f"{threshold:.3f}" if isinstance(threshold, int | float) else "-",
        )
    promoted = "champion" in run.materialized
    verdict = "[green]PROMOTED[/green]" if promoted else "[yellow]REFUSED[/yellow]"
    lines: list[RenderableType] = [
        f"Dagster run {run.run_id[:8]}: materialised {', '.join(run.materialized) or 'nothing'}"
        + (f"; failed checks: {', '.join(run.failed_checks)}" if run.failed_checks else ""),
        f"batches: train {_span(selection.get('train', []))}, validation "
        f"{_span(selection.get('validation', []))}, out-of-time holdout "
        f"{_span(selection.get('holdout', []))} ({evaluation.get('holdout_rows', 0):,} rows)",
        metrics,
        f"gate on {decision.get('primary_metric', '?')}: {verdict} "
        f"{decision.get('version', '?')} (challenger {decision.get('challenger_value')}, "
        f"champion {decision.get('champion_value')})",
        *(f"  - {reason}" for reason in decision.get("reasons", [])),
    ]
    errors = [e for e in run.errors if "gate" not in e]
    if not run.success and errors:
        lines.append("[red]errors:[/red] " + "; ".join(errors))
    outcome = {
        "promoted": promoted,
        "version": decision.get("version"),
        "headline": f"{decision.get('version')} {'promoted' if promoted else 'refused'} "
        f"({decision.get('primary_metric')} {_fmt(decision.get('challenger_value'))} vs "
        f"champion {_fmt(decision.get('champion_value'))})",
    }
    return Group(*lines), outcome


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def champion_step(ctx: DemoContext) -> RenderableType:
    """The first champion: trained on the first period only (the 2015 batches)."""
    from pipelines.registry import resolve_champion

    until = first_period_end(ctx)
    params_path = params_until(ctx.settings, until)
    with ctx.console.status(f"training the first champion on batches up to {until} ..."):
        run = runner.run_retraining(
            ensure_dagster_home(ctx.settings.dagster),
            params_path=params_path,
            tags={"scoreloop/demo_step": "first-champion"},
        )
    summary, outcome = retraining_summary(ctx.settings, run)
    ctx.headlines["champion"] = f"{outcome['headline']}, trained up to {until}"
    champion = resolve_champion(ctx.settings)
    if champion is None:
        raise typer.Exit(_fail(ctx, "no champion after the first training run", run))
    ctx.results["first_champion"] = champion.version
    return Group(
        f"window capped at split.until={until} (params copy {params_path})",
        summary,
        f"champion: {champion.name} {champion.version}; model dir {champion.model_dir}",
        f"model card: {champion.model_dir / 'card.md'}  (with evaluation and gate: "
        f"`scoreloop model show {champion.version}`, or the champion asset in the UI)",
    )


def _fail(ctx: DemoContext, message: str, run: Any) -> int:
    ctx.console.print(f"[red]demo stopped:[/red] {message}")
    for error in run.errors:
        ctx.console.print(f"  {error}")
    return 1


def format_reasons(reasons: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['feature']}={r['value']} ({r['contribution']:+.2f})" for r in reasons)


def snapshot_rows(settings: Settings, manifest: SnapshotManifest) -> pl.DataFrame:
    return pl.read_ipc(settings.snapshots / manifest.snapshot_id / "scores.arrow")


def sample_table(rows: pl.DataFrame, title: str) -> Table:
    table = Table("entity_id", "batch", "score", "decision", "top reasons", title=title)
    for row in rows.iter_rows(named=True):
        table.add_row(
            str(row["entity_id"]),
            row["batch_id"],
            f"{row['score']:.3f}",
            "yes" if row["decision"] else "no",
            format_reasons(row["reasons"]),
        )
    return table


def publish_summary(ctx: DemoContext, run: Any, before: SnapshotManifest | None) -> Group:
    from pipelines.scores_table import scores_uri
    from pipelines.snapshot import read_current

    manifest = read_current(ctx.settings.snapshots)
    if manifest is None or not run.success:
        raise typer.Exit(_fail(ctx, "no serving snapshot was published", run))
    scored = (
        pl.scan_delta(scores_uri(ctx.settings))
        .filter(pl.col("model_version") == manifest.model_version)
        .select("batch_id")
        .collect()
    )
    rows = snapshot_rows(ctx.settings, manifest)
    ctx.results["snapshot"] = manifest
    ctx.results["scored_rows"] = scored.height
    ctx.results["lookup"] = rows.sample(1, seed=ctx.params.simulate.seed).row(0, named=True)
    if before is None:
        change = f"first snapshot, model version {manifest.model_version}"
    elif before.model_version == manifest.model_version:
        change = f"snapshot republished, model version unchanged ({manifest.model_version})"
    else:
        change = f"snapshot model version {before.model_version} -> {manifest.model_version}"
    return Group(
        f"Dagster run {run.run_id[:8]}: materialised {', '.join(run.materialized)} (the batches "
        "it scored are reported as `scores` partitions)",
        f"scores table {scores_uri(ctx.settings)}: {scored.height:,} rows by "
        f"{manifest.model_version} over {scored['batch_id'].n_unique()} batches",
        f"{change}; snapshot {manifest.snapshot_id}: {manifest.row_count:,} entities, "
        f"decision rate {int(rows['decision'].sum()) / max(rows.height, 1):.1%}",
        sample_table(rows.sample(4, seed=ctx.params.simulate.seed), "a few scored rows"),
    )


def score_step(ctx: DemoContext) -> RenderableType:
    """Score every accepted batch with the champion and publish the serving snapshot."""
    from pipelines.snapshot import read_current

    before = read_current(ctx.settings.snapshots)
    with ctx.console.status("scoring every accepted batch (with SHAP reasons) ..."):
        run = runner.publish_snapshot(
            ensure_dagster_home(ctx.settings.dagster), tags={"scoreloop/demo_step": "score"}
        )
    published = publish_summary(ctx, run, before)
    manifest = ctx.results["snapshot"]
    ctx.headlines["score"] = (
        f"{ctx.results['scored_rows']:,} rows in the scores table by {manifest.model_version}, "
        f"snapshot of {manifest.row_count:,} entities"
    )
    return published


def challenger_step(ctx: DemoContext) -> RenderableType:
    """A challenger on the newest labelled batches vs the champion; rescore if promoted."""
    from pipelines.registry import resolve_champion
    from pipelines.snapshot import read_current

    previous = resolve_champion(ctx.settings)
    home = ensure_dagster_home(ctx.settings.dagster)
    with ctx.console.status("training a challenger on the newest labelled batches ..."):
        run = runner.run_retraining(home, tags={"scoreloop/demo_step": "challenger"})
    summary, outcome = retraining_summary(ctx.settings, run)
    champion = resolve_champion(ctx.settings)
    ctx.results["challenger"] = outcome
    ctx.headlines["challenger"] = outcome["headline"]
    if not outcome["promoted"] or champion is None:
        return Group(
            summary,
            f"the champion stays {previous.version if previous else None}; the snapshot is "
            "unchanged",
        )
    request = runner.rescore_request(home, previous.version if previous else None)
    if request is None:
        raise typer.Exit(_fail(ctx, "the rescore sensor did not react to the promotion", run))
    before = read_current(ctx.settings.snapshots)
    with ctx.console.status(f"rescoring the population with {champion.version} ..."):
        rescore = runner.publish_snapshot(home, tags=dict(request.tags))
    published = publish_summary(ctx, rescore, before)
    ctx.headlines["challenger"] = (
        f"{outcome['headline']}; snapshot {before.model_version if before else None} -> "
        f"{champion.version}"
    )
    return Group(
        summary,
        f"champion_rescore_sensor: champion {previous.version if previous else None} -> "
        f"{champion.version}, requested rescore_job (run key {request.run_key})",
        published,
    )


def monitor_step(ctx: DemoContext) -> RenderableType:
    """Drift and realised performance of the newest batches, then the staleness verdict."""
    from pipelines.drift import read_drift
    from pipelines.performance import read_performance
    from pipelines.registry import resolve_champion
    from pipelines.staleness import staleness

    batches = accepted_batches(ctx.settings.tables, "records")[-3:]
    with ctx.console.status(f"drift and performance of {', '.join(batches)} ..."):
        runs = runner.monitor_batches(ensure_dagster_home(ctx.settings.dagster), batches)
    champion = resolve_champion(ctx.settings)
    version = champion.version if champion else ""
    drift = read_drift(ctx.settings).filter(
        pl.col("model_version") == version, pl.col("batch_id").is_in(batches)
    )
    performance = read_performance(ctx.settings).filter(
        pl.col("model_version") == version, pl.col("batch_id").is_in(batches)
    )
    table = Table(
        "batch", "run", "max PSI", "drifted", "rows labelled", "realised AUC", title="monitoring"
    )
    for run in runs:
        part = drift.filter(pl.col("batch_id") == run.batch_id)
        psi = part.filter(pl.col("metric") == "psi")["value"].max()
        drifted = sorted(part.filter(pl.col("drifted"))["feature"].unique().to_list())
        perf = performance.filter(pl.col("batch_id") == run.batch_id)
        auc = perf["roc_auc"][0] if perf.height else None
        table.add_row(
            run.batch_id,
            "ok" if run.success else "[red]failed[/red]",
            f"{psi:.3f}" if isinstance(psi, float) else "-",
            ", ".join(drifted) or "none",
            f"{perf['rows'][0]:,}" if perf.height else "-",
            f"{auc:.4f}" if isinstance(auc, float) else "-",
        )
    decision = staleness(ctx.settings)
    lines: list[RenderableType] = [table]
    if decision is not None:
        d = decision.details
        verdict = "[yellow]STALE: retrain[/yellow]" if decision.stale else "[green]fresh[/green]"
        lines.append(
            f"staleness of {version}: {verdict} (reference AUC {d.get('reference_auc')}, "
            f"realised {d.get('realised_auc')}, {d.get('batches_since_training')} batches since "
            "training)"
        )
        lines.extend(f"  - {reason}" for reason in decision.reasons)
        why = ", ".join(reason.split(":")[0] for reason in decision.reasons)
        verdict_text = f"stale ({why})" if decision.stale else "fresh"
        ctx.headlines["monitor"] = f"{version} is {verdict_text}"
    path = alerts_path(ctx.settings)
    count = len(path.read_text().splitlines()) if path.exists() else 0
    lines.append(
        f"alerts so far: {count} in {path} (drift and performance alerts of these runs; "
        "refused batches and failed runs are alerted by the sensors once `make ui` runs)"
    )
    for run in runs:
        if run.errors:
            lines.append(f"[red]{run.batch_id}:[/red] " + "; ".join(run.errors))
    return Group(*lines)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: object = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def _scoreloop_argv() -> list[str]:
    script = Path(sys.executable).with_name("scoreloop")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from scoreloop.cli import main; main()"]


def record_of(
    settings: Settings, spec: DatasetSpec, entity_id: Any, batch_id: str
) -> dict[str, Any]:
    """The entity's validated record (spec features only), as the JSON /predict takes."""
    frame = (
        pl.scan_delta(table_uri(settings.tables, VALIDATED))
        .filter(pl.col("batch_id") == batch_id, pl.col(spec.id.name) == entity_id)
        .select(spec.feature_names)
        .collect()
    )
    return frame.row(0, named=True) if frame.height else {}


def serve_step(ctx: DemoContext) -> RenderableType:
    """Start ``scoreloop serve`` on a free port, look one entity up, score one record, stop it."""
    from pipelines.snapshot import read_current

    lookup = ctx.results.get("lookup")
    manifest = read_current(ctx.settings.snapshots)
    if lookup is None or manifest is None:
        return "no snapshot published: nothing to serve"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = ctx.settings.state_root / "demo" / "serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SCORELOOP_STATE_ROOT": str(ctx.settings.state_root),
        "SCORELOOP_SNAPSHOT_DIR": str(ctx.settings.snapshots),
        "SCORELOOP_SPEC_PATH": str(ctx.settings.spec_path),
        # a real admin token, generated for this run only (never printed)
        "SCORELOOP_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "SCORELOOP_DEV_MODE": "0",
    }
    argv = [*_scoreloop_argv(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning"]
    lines: list[RenderableType] = []
    with log_path.open("w") as log, ctx.console.status(f"starting the lookup service on {base}"):
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.perf_counter()
            ready = _wait_ready(base, process, timeout=90.0)
            if not ready:
                tail = log_path.read_text()[-2000:]
                raise typer.Exit(_fail_text(ctx, f"the service did not become ready: {tail}"))
            lines.append(
                f"`scoreloop serve` pid {process.pid} on {base} ready in "
                f"{time.perf_counter() - started:.1f} s (snapshot {manifest.snapshot_id})"
            )
            entity = lookup["entity_id"]
            status, body = _http("GET", f"{base}/scores/{entity}")
            ctx.results["served"] = {"status": status, "body": body}
            lines.append(f"GET /scores/{entity} -> {status}")
            if status == 200:
                lines.append(
                    f"  entity {body['entity_id']} batch {body['batch_id']}: score "
                    f"{body['score']:.4f}, decision {body['decision']} (threshold "
                    f"{body['threshold']:.3f}), model {body['model_version']}; reasons: "
                    f"{format_reasons(body['reasons'])}"
                )
            record = record_of(ctx.settings, ctx.spec, entity, lookup["batch_id"])
            status, body = _http("POST", f"{base}/predict", record)
            ctx.results["predicted"] = {"status": status, "body": body}
            lines.append(f"POST /predict (the same entity's record) -> {status}")
            if status == 200:
                lines.append(
                    f"  {json.dumps(record, separators=(',', ':'))}\n"
                    f"  score {body['score']:.4f}, decision {body['decision']}, model "
                    f"{body.get('model_version')}; reasons: {format_reasons(body['reasons'])}"
                )
            else:
                lines.append(f"  {json.dumps(body)[:500]}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    lines.append(f"service stopped (pid {process.pid}); its log: {log_path}")
    ctx.headlines["serve"] = (
        f"GET /scores -> {ctx.results.get('served', {}).get('status')}, POST /predict -> "
        f"{ctx.results.get('predicted', {}).get('status')}"
    )
    lines.append(
        "run it yourself: [bold]`make serve`[/bold] (needs SCORELOOP_ADMIN_TOKEN, or "
        "`scoreloop serve --dev` locally), then `curl http://127.0.0.1:8000/scores/"
        f"{lookup['entity_id']}`; API docs at http://127.0.0.1:8000/docs"
    )
    return Group(*lines)


def _fail_text(ctx: DemoContext, message: str) -> int:
    ctx.console.print(f"[red]demo stopped:[/red] {message}")
    return 1


def _wait_ready(base: str, process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            status, _ = _http("GET", f"{base}/readyz", timeout=2.0)
            if status == 200:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    return False


def where_things_live(settings: Settings) -> Table:
    table = Table("what", "where", title="state")
    rows = [
        ("landing files", str(settings.landing)),
        ("Delta tables (validated, scores, drift, ...)", settings.tables),
        ("registry (git + DVC + GTO tags)", str(settings.registry)),
        ("DVC remote", settings.remote),
        ("serving snapshots", str(settings.snapshots)),
        ("alerts", str(alerts_path(settings))),
        ("Dagster instance (`make ui`)", str(settings.dagster)),
    ]
    for what, where in rows:
        table.add_row(what, where)
    return table


def reset_state_root(settings: Settings) -> list[str]:
    """Wipe ``settings.state_root`` for a fresh demo; returns warnings.

    Refuses a root that is (or contains) the project, the home folder or ``/``, and a folder
    holding anything a state root does not (see :data:`STATE_ENTRIES`) unless it carries the
    marker file the demo writes. Locations overridden to live outside the root are left alone.
    """
    root = settings.state_root.resolve()
    if root in {Path("/"), Path.home().resolve()} or PROJECT_ROOT.resolve().is_relative_to(root):
        raise typer.BadParameter(f"refusing to wipe {root}: it is not a state root")
    warnings = []
    overridden = [
        ("SCORELOOP_LANDING_DIR", settings.landing_dir),
        ("SCORELOOP_TABLE_ROOT", settings.table_root),
        ("SCORELOOP_DVC_REMOTE", settings.dvc_remote),
        ("SCORELOOP_DAGSTER_HOME", settings.dagster_home),
        ("SCORELOOP_REGISTRY_REPO", settings.registry_repo),
        ("SCORELOOP_SNAPSHOT_DIR", settings.snapshot_dir),
    ]
    for name, value in overridden:
        if value is not None and "://" not in str(value):
            if not Path(value).resolve().is_relative_to(root):
                warnings.append(f"{name}={value} is outside the state root: not wiped")
        elif value is not None:
            warnings.append(f"{name}={value} is remote: not wiped")
    if root.exists():
        entries = {p.name for p in root.iterdir()}
        unknown = sorted(entries - STATE_ENTRIES)
        if unknown and STATE_MARKER not in entries:
            raise typer.BadParameter(
                f"refusing to wipe {root}: it holds {unknown}, which scoreloop did not write; "
                "remove it yourself or run with --keep"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE_MARKER).write_text("scoreloop state root (wiped by `scoreloop demo --fresh`)\n")
    return warnings


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
    DemoStep("serve", "Serve: one lookup and one prediction over HTTP", serve_step),
]


def run_demo(
    *,
    limit: int | None = None,
    steps: list[DemoStep] | None = None,
    console: Console | None = None,
    settings: Settings | None = None,
) -> DemoContext:
    """Run the demo steps and print what each produced; returns the shared context."""
    settings = settings or get_settings()
    out = console or Console()
    ctx = DemoContext(
        settings=settings,
        spec=load_spec(settings.spec_path),
        params=load_params(settings.params_path),
        console=out,
        limit=limit,
    )
    timings: list[tuple[DemoStep, float]] = []
    for number, step in enumerate(steps if steps is not None else STEPS, start=1):
        out.rule(f"[bold]{number}. {step.title}")
        started = time.perf_counter()
        summary = step.run(ctx)
        seconds = time.perf_counter() - started
        timings.append((step, seconds))
        out.print(summary or "done")
        out.print(f"[dim]({step.name}: {seconds:.1f} s)[/dim]")
    out.rule("[bold]summary")
    table = Table("step", "seconds", "outcome", title="timings")
    for step, seconds in timings:
        table.add_row(step.name, f"{seconds:.1f}", ctx.headlines.get(step.name, ""))
    table.add_row("[bold]total", f"[bold]{sum(s for _, s in timings):.1f}", "")
    out.print(table)
    out.print(where_things_live(settings))
    out.print(f"state under {settings.state_root}; Dagster instance at {settings.dagster}")
    out.print(
        "run [bold]`make ui`[/bold] to see the materialisations, [bold]`make serve`[/bold] for "
        "the lookup service"
    )
    return ctx


__all__ = [
    "STEPS",
    "DemoContext",
    "DemoStep",
    "ensure_dagster_home",
    "reset_state_root",
    "run_demo",
]
