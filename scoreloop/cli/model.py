"""CLI for retraining and the registry.

``scoreloop training-set | train | evaluate | gate`` run the steps in the deployment repo;
``scoreloop model list | show | promote | rollback`` read and change the registry;
``scoreloop stage ...`` are the DVC stage bodies (dvc.yaml calls them inside the deployment repo).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import get_settings

console = Console()
model_app = typer.Typer(
    help="The model registry: versions, champion, promotion.", no_args_is_help=True
)
stage_app = typer.Typer(
    help="DVC stage bodies (dvc.yaml runs these in the deployment repo).", no_args_is_help=True
)


#: Errors that mean "cannot do that" (message says why): printed, exit code 2.
def _expected_errors() -> tuple[type[Exception], ...]:
    from pipelines.evaluate import EvaluationError
    from pipelines.features import FeatureMismatchError
    from pipelines.model_bundle import ModelLoadError
    from pipelines.registry import RegistryError
    from pipelines.train import TrainingError
    from pipelines.training_set import TrainingSetError
    from pipelines.workspace import WorkspaceError

    return (
        EvaluationError,
        FeatureMismatchError,
        ModelLoadError,
        RegistryError,
        TrainingError,
        TrainingSetError,
        WorkspaceError,
    )


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(2)


@contextmanager
def _reported() -> Iterator[None]:
    """An expected error (see :func:`_expected_errors`) is printed and exits with code 2."""
    try:
        yield
    except _expected_errors() as exc:
        raise _fail(exc) from exc


def _print_decision(decision: dict[str, Any]) -> None:
    verdict = decision.get("decision", "?")
    colour = "green" if verdict == "promote" else "yellow"
    console.print(
        f"gate: [{colour}]{verdict}[/{colour}] {decision.get('challenger_version') or ''} "
        f"({decision.get('primary_metric')} {decision.get('challenger_value')} vs champion "
        f"{decision.get('champion_version') or 'none'} {decision.get('champion_value')})"
    )
    for reason in decision.get("reasons", []):
        console.print(f"  - {reason}")


def training_set_command() -> None:
    """Select the newest labelled batches and rebuild the training set (DVC-versioned)."""
    from pipelines.workspace import step_training_set

    with _reported():
        result = step_training_set(get_settings())
    console.print(
        f"training set {result['path']}: {result['rows']} rows, md5 {result['data_version']}"
    )
    for name, info in result["splits"].items():
        console.print(f"  {name}: {info['rows']} rows, batches {', '.join(info['batches'])}")


def train_command() -> None:
    """Retrain: training set -> challenger -> evaluation vs champion -> gate (-> promotion)."""
    from pipelines.workspace import train_all

    with _reported():
        result = train_all(get_settings())
    console.print(
        f"training set md5 {result['training_set']['data_version']} "
        f"({result['training_set']['rows']} rows)"
    )
    console.print(
        f"challenger {result['challenger']['version']} -> {result['challenger']['model_dir']}"
    )
    metrics = {
        role: data["overall"] for role, data in result["evaluation"]["evaluation"]["models"].items()
    }
    _metrics_table(metrics)
    _print_decision(result["promotion"]["decision"])
    champion = result["promotion"]["champion"]
    if champion is not None:
        console.print(f"champion is now {champion.name} {champion.version}")


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> None:
    table = Table("model", "roc_auc", "pr_auc", "log_loss", "brier", "f1")
    for role, m in metrics.items():
        table.add_row(
            role, *(str(m.get(k)) for k in ("roc_auc", "pr_auc", "log_loss", "brier", "f1"))
        )
    console.print(table)


def evaluate_command() -> None:
    """Evaluate the trained challenger against the champion on the holdout (DVC stage)."""
    from pipelines.workspace import step_evaluate

    with _reported():
        result = step_evaluate(get_settings())
    _metrics_table({r: d["overall"] for r, d in result["evaluation"]["models"].items()})
    for path in result["plots"].values():
        console.print(f"plot: {path}")


def gate_command(
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Register the challenger, record and act on the decision."),
    ] = False,
) -> None:
    """Show the gate's decision on the current evaluation (exit 1 when it refuses)."""
    from pipelines.workspace import current_decision, step_promote

    settings = get_settings()
    with _reported():
        if apply:
            result = step_promote(settings)
            decision = result["decision"]
            console.print(
                f"registered {result['version']}; decision recorded in {result['decision_file']}"
            )
        else:
            decision = current_decision(settings).to_dict()
    _print_decision(decision)
    if decision.get("decision") != "promote":
        raise typer.Exit(1)


@model_app.command("list")
def model_list() -> None:
    """Registered versions, the champion, and the stage history."""
    from pipelines.registry import champion_history, list_versions

    settings = get_settings()
    versions = list_versions(settings)
    if not versions:
        console.print(f"no registered versions of {settings.model_name} in {settings.registry}")
        return
    table = Table("version", "registered at", "commit", "stage")
    for v in versions:
        table.add_row(
            v.version,
            v.registered_at.isoformat() if v.registered_at else "-",
            v.commit[:12],
            "[green]prod (champion)[/green]" if v.is_champion else "",
        )
    console.print(table)
    for when, version, event in champion_history(settings):
        console.print(f"  {when.isoformat()}  prod {event:10} {version}")


@model_app.command("show")
def model_show(version: str) -> None:
    """The model card of a version (metadata, holdout evaluation, gate decisions)."""
    from pipelines.model_bundle import load_metadata
    from pipelines.model_card import render_card
    from pipelines.registry import decisions, fetch_version, git, version_commit

    settings = get_settings()
    with _reported():
        commit = version_commit(settings, version)
        metadata = load_metadata(fetch_version(settings, version, commit=commit))
    raw = git(settings.registry, "show", f"{commit}:evaluation/evaluation.json", check=False)
    evaluation = json.loads(raw) if raw else None
    mine = [d for d in decisions(settings) if d.get("version") == version]
    console.print(
        render_card(metadata, evaluation=evaluation, decision=mine[-1] if mine else None),
        markup=False,
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
    from pipelines.workspace import promote_version

    with _reported():
        result = promote_version(get_settings(), version, force=force, reason=reason)
    _print_decision(result["decision"])
    if result["champion"] is None:
        raise typer.Exit(1)
    console.print(f"champion is now {result['champion'].version}")


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the rollback.")] = "",
) -> None:
    """Put the previous champion back in prod (one command)."""
    from pipelines.registry import rollback

    with _reported():
        ref = rollback(get_settings(), reason=reason)
    console.print(f"champion is now {ref.name} {ref.version} ({ref.model_dir})")


@stage_app.command("training-set")
def stage_training_set_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Build data/training_set.parquet from selection.json."""
    from pipelines.workspace import stage_training_set

    with _reported():
        stage_training_set(repo.resolve(), get_settings())


@stage_app.command("train")
def stage_train_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Train the challenger into model/."""
    from pipelines.workspace import stage_train

    with _reported():
        stage_train(repo.resolve(), get_settings())


@stage_app.command("evaluate")
def stage_evaluate_command(
    repo: Annotated[Path, typer.Option(help="Deployment repo (default: current dir).")] = Path("."),
) -> None:
    """Write evaluation/ (metrics.json, plots) for challenger vs champion vs baseline."""
    from pipelines.workspace import stage_evaluate

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
