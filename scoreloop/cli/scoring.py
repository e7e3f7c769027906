"""``scoreloop score`` and ``scoreloop rescore``: the CLI doors to :mod:`pipelines.scores_table`
and :mod:`pipelines.rescore`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def score_command(
    batches: Annotated[list[str], typer.Argument(help="Accepted batch id(s), e.g. 2015-01.")],
) -> None:
    """Score accepted batches with the champion (replaces that model's rows of each batch)."""
    from pipelines.features import FeatureMismatchError
    from pipelines.score import ScoringError
    from pipelines.scores_table import score_batch, scores_uri
    from pipelines.settings import get_settings

    settings = get_settings()
    table = Table("batch", "model", "rows", "decision rate", "mean score", "seconds")
    try:
        for batch_id in batches:
            result = score_batch(batch_id, settings=settings)
            summary = result.summary
            table.add_row(
                batch_id,
                f"{result.model_name}:{result.model_version}",
                str(result.rows),
                f"{summary.decision_rate:.2%}",
                f"{summary.mean:.4f}" if result.rows else "",
                f"{result.seconds:.2f}",
            )
    except (ScoringError, FeatureMismatchError) as exc:
        console.print(table)
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(table)
    console.print(f"scores table: {scores_uri(settings)}")


def rescore_command(
    force: Annotated[
        bool, typer.Option(help="Rescore batches already scored by the champion too.")
    ] = False,
    publish: Annotated[
        bool, typer.Option(help="Publish the serving snapshot when every batch is scored.")
    ] = True,
) -> None:
    """Score every accepted batch with the champion, then publish one serving snapshot."""
    from pipelines.features import FeatureMismatchError
    from pipelines.rescore import rescore_population
    from pipelines.score import ScoringError
    from pipelines.scores_table import BatchScoreResult
    from pipelines.snapshot import SnapshotError

    def report(result: BatchScoreResult) -> None:
        console.print(
            f"scored {result.batch_id} with {result.model_version}: {result.rows} rows "
            f"in {result.seconds:.2f}s"
        )

    try:
        outcome = rescore_population(force=force, publish=publish, on_batch=report)
    except (ScoringError, FeatureMismatchError, SnapshotError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"champion {outcome.model_version}: {len(outcome.scored)} batch(es) scored, "
        f"{len(outcome.skipped)} already current"
    )
    if outcome.snapshot is not None:
        snap = outcome.snapshot
        console.print(f"published snapshot {snap.snapshot_id} ({snap.row_count} entities)")
