"""``scoreloop explain ENTITY_ID --method lime|shap``: the CLI door to
:mod:`pipelines.explain_entity`."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def explain_command(
    entity_id: Annotated[str, typer.Argument(help="The entity id (the spec's id column).")],
    method: Annotated[
        str, typer.Option(help="shap (exact, log-odds) or lime (local surrogate, probability).")
    ] = "shap",
    seed: Annotated[int, typer.Option(help="LIME's random seed (same seed, same answer).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Explain the champion's score of one entity, every feature with its attribution."""
    from pipelines.explain_entity import ExplainError, explain_entity

    if method not in ("shap", "lime"):
        console.print(f"[red]error:[/red] --method must be shap or lime, not {method!r}")
        raise typer.Exit(2)
    chosen: Literal["shap", "lime"] = "lime" if method == "lime" else "shap"
    try:
        result = explain_entity(entity_id, chosen, seed=seed)
    except ExplainError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    unit = "log-odds" if chosen == "shap" else "probability"
    table = Table("feature", "value", f"{chosen} ({unit})")
    for feature, value, attribution in result.attributions:
        table.add_row(feature, value, f"{attribution:+.4f}")
    console.print(
        f"entity {result.entity_id} (batch {result.batch_id}), model {result.model_version}: "
        f"score {result.score:.4f}"
    )
    console.print(table)
