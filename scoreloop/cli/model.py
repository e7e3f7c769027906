"""CLI for retraining and the registry.

``scoreloop training-set | train | evaluate | gate`` run the steps in the deployment repo;
``scoreloop model list | show | promote | rollback | push`` read and change the registry (with
``SCORELOOP_REGISTRY_REMOTE`` set, every change pushes its GTO tags; ``push`` retries a failed one);
``scoreloop stage ...`` are the DVC stage bodies (dvc.yaml calls them inside the deployment repo).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from pipelines.errors import ScoreloopError
from pipelines.settings import Settings, get_settings

if TYPE_CHECKING:
    from pipelines.gate import GateDecision

console = Console()
model_app = typer.Typer(
    help="The model registry: versions, champion, promotion.", no_args_is_help=True
)
stage_app = typer.Typer(
    help="DVC stage bodies (dvc.yaml runs these in the deployment repo).", no_args_is_help=True
)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


@contextmanager
def _reported() -> Iterator[None]:
    """An expected error (a :class:`ScoreloopError`) is printed and exits with code 2."""
    try:
        yield
    except ScoreloopError as exc:
        raise _fail(exc) from exc


def _report_push(settings: Settings) -> None:
    """After a registry change: say whether its tags reached the remote (exit stays 0 either way:
    the local change stands; ``scoreloop model push`` retries)."""
    from pipelines.registry import RegistryError, unpushed_tags

    if not settings.registry_remote:
        return
    try:
        pending = unpushed_tags(settings)
    except RegistryError as exc:
        console.print(f"[red]registry remote unreachable:[/red] {exc}")
        return
    if pending:
        console.print(
            f"[red]not pushed to {settings.registry_remote}:[/red] {', '.join(pending)}; "
            "retry with `scoreloop model push`"
        )
    else:
        console.print(f"tags pushed to {settings.registry_remote}")


def _print_decision(decision: GateDecision) -> None:
    verdict = "promote" if decision.promote else "reject"
    colour = "green" if decision.promote else "yellow"
    console.print(
        f"gate: [{colour}]{verdict}[/{colour}] {decision.challenger_version or ''} "
        f"({decision.primary_metric} {decision.challenger_value} vs champion "
        f"{decision.champion_version or 'none'} {decision.champion_value})"
    )
    for reason in decision.reasons:
        console.print(f"  - {reason}")


def training_set_command() -> None:
    """Select the newest labelled batches and rebuild the training set (DVC-versioned)."""
    from pipelines.promote import prepare_training_set

    with _reported():
        result = prepare_training_set(get_settings())
    console.print(f"training set {result.path}: {result.rows} rows, md5 {result.data_version}")
    for name, info in result.splits.items():
        console.print(f"  {name}: {info['rows']} rows, batches {', '.join(info['batches'])}")


def train_command() -> None:
    """Retrain: training set -> challenger -> evaluation vs champion -> gate (-> promotion)."""
    from pipelines.promote import train_all

    with _reported():
        run = train_all(settings := get_settings())
    console.print(
        f"training set md5 {run.training_set.data_version} ({run.training_set.rows} rows)"
    )
    console.print(f"challenger {run.challenger.version} -> {run.challenger.model_dir}")
    _metrics_table(run.judgement.evaluation)
    _print_decision(run.promotion.decision)
    champion = run.promotion.champion
    if champion is not None:
        console.print(f"champion is now {champion.name} {champion.version}")
    _report_push(settings)


def _metrics_table(evaluation: dict[str, Any]) -> None:
    table = Table("model", "roc_auc", "pr_auc", "log_loss", "brier", "f1")
    for role, data in evaluation["models"].items():
        m = data["overall"]
        table.add_row(
            role, *(str(m.get(k)) for k in ("roc_auc", "pr_auc", "log_loss", "brier", "f1"))
        )
    console.print(table)


def evaluate_command() -> None:
    """Evaluate the trained challenger against the champion on the holdout and judge it."""
    from pipelines.promote import judge

    with _reported():
        judgement = judge(get_settings())
    _metrics_table(judgement.evaluation)
    for path in judgement.plots.values():
        console.print(f"plot: {path}")


def gate_command(
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Register the challenger, record and act on the decision."),
    ] = False,
) -> None:
    """Show the gate's decision on the current evaluation (exit 1 when it refuses)."""
    from pipelines.promote import promote, recorded_decision

    settings = get_settings()
    with _reported():
        if apply:
            result = promote(settings)
            decision = result.decision
            console.print(
                f"registered {result.version}; decision recorded in {result.decision_file}"
            )
            _report_push(settings)
        else:
            decision = recorded_decision(settings)
    _print_decision(decision)
    if not decision.promote:
        raise typer.Exit(1)


@model_app.command("list")
def model_list() -> None:
    """Registered versions, the champion, refused versions and why, the stage history, and
    tags not yet pushed."""
    from pipelines.registry import (
        RegistryError,
        champion_history,
        decisions,
        list_versions,
        unpushed_tags,
    )

    settings = get_settings()
    versions = list_versions(settings)
    if not versions:
        console.print(f"no registered versions of {settings.model_name} in {settings.registry}")
        return
    try:
        pending = set(unpushed_tags(settings))
    except RegistryError as exc:
        console.print(f"[red]registry remote unreachable:[/red] {exc}")
        pending = set()
    last_decision = {d.get("version"): d for d in decisions(settings)}
    table = Table("version", "registered at", "commit", Column("stage", no_wrap=True), "remote")
    name = settings.model_name
    refused = []
    for v in versions:
        stage, why = _stage_column(v.is_champion, last_decision.get(v.version))
        if "refused" in stage:
            refused.append(f"  {v.version} refused by the gate: {why}")
        table.add_row(
            v.version,
            v.registered_at.isoformat() if v.registered_at else "-",
            v.commit[:12],
            stage,
            _remote_column(settings, f"{name}@{v.version}" in pending),
        )
    console.print(table)
    for line in refused:
        console.print(line, markup=False)
    for when, version, event in champion_history(settings):
        console.print(f"  {when.isoformat()}  prod {event:10} {version}")
    for tag in sorted(pending):
        console.print(f"[red]unpushed[/red] {tag}")
    if pending:
        console.print("push them with `scoreloop model push`")


def _stage_column(is_champion: bool, decision: dict[str, Any] | None) -> tuple[str, str]:
    """The ``stage`` and ``why`` cells of a version: champion, refused by the gate (with its
    reasons), or a former champion; never a blank stage."""
    reasons = "; ".join(decision.get("reasons", [])) if decision else ""
    if is_champion:
        return "[green]prod (champion)[/green]", reasons
    if decision is None:
        return "registered", "no gate decision recorded"
    if decision.get("action") == "gate" or decision.get("decision") == "reject":
        return "[yellow]refused[/yellow]", reasons
    return "former champion", reasons


def _remote_column(settings: Settings, unpushed: bool) -> str:
    if not settings.registry_remote:
        return "-"
    return "[red]unpushed[/red]" if unpushed else "pushed"


@model_app.command("push")
def model_push() -> None:
    """Push the registry's unpushed tags to SCORELOOP_REGISTRY_REMOTE (exit 1 if some fail)."""
    from pipelines.registry import push_tags

    settings = get_settings()
    with _reported():
        result = push_tags(settings)
    console.print(result.describe())
    if not result.ok:
        raise typer.Exit(1)


@model_app.command("show")
def model_show(version: str) -> None:
    """The model card of a version (metadata, holdout evaluation, gate decisions)."""
    from pipelines.deployment_repo import git
    from pipelines.model_bundle import load_metadata
    from pipelines.model_card import render_card
    from pipelines.registry import decisions, fetch_version, version_commit

    settings = get_settings()
    with _reported():
        commit = version_commit(settings, version)
        metadata = load_metadata(fetch_version(settings, version, commit=commit))
    raw = git(settings.registry, "show", f"{commit}:evaluation/evaluation.json", check=False)
    evaluation = json.loads(raw) if raw else None
    mine = [d for d in decisions(settings) if d.get("version") == version]
    from rich.markdown import Markdown

    # the card is markdown: rendered (headings, tables, lists), not printed as raw text
    console.print(
        Markdown(render_card(metadata, evaluation=evaluation, decision=mine[-1] if mine else None))
    )


@model_app.command("promote")
def model_promote(
    version: str,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate refuses.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --force).")] = "",
) -> None:
    """Promote a version by hand: re-judged by the gate against today's champion unless forced."""
    from pipelines.promote import promote_version

    settings = get_settings()
    with _reported():
        result = promote_version(settings, version, force=force, reason=reason)
    _print_decision(result.decision)
    _report_push(settings)
    if result.champion is None:
        raise typer.Exit(1)
    console.print(f"champion is now {result.champion.version}")


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the rollback.")] = "",
) -> None:
    """Put the previous champion back in prod (one command)."""
    from pipelines.registry import rollback

    settings = get_settings()
    with _reported():
        ref = rollback(settings, reason=reason)
    console.print(f"champion is now {ref.name} {ref.version} ({ref.model_dir})")
    _report_push(settings)


@stage_app.command("training-set")
def stage_training_set_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Build data/training_set.parquet from selection.json."""
    from pipelines.stages import stage_training_set

    with _reported():
        stage_training_set(repo.resolve(), get_settings())


@stage_app.command("train")
def stage_train_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Train the challenger into model/."""
    from pipelines.stages import stage_train

    with _reported():
        stage_train(repo.resolve(), get_settings())


@stage_app.command("evaluate")
def stage_evaluate_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Write evaluation/ (metrics.json, plots) for challenger vs champion vs baseline."""
    from pipelines.stages import stage_evaluate

    with _reported():
        stage_evaluate(repo.resolve(), get_settings())


def register_commands(app: typer.Typer) -> None:
    """Add the retraining and registry commands to the main ``scoreloop`` app."""
    app.command("training-set")(training_set_command)
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("gate")(gate_command)
    app.add_typer(model_app, name="model")
    app.add_typer(stage_app, name="stage")
