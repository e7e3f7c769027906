"""The ``scoreloop`` command line: the same pipeline functions Dagster and DVC call."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.params import load_params
from pipelines.settings import get_settings
from pipelines.spec import SpecError, infer_spec, load_spec, read_table, save_spec

app = typer.Typer(
    help="scoreloop: batch scoring and retraining for tabular CatBoost models.",
    no_args_is_help=True,
)
dataset_app = typer.Typer(help="Dataset specs: draft one for your own table.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
console = Console()


@dataset_app.command("infer")
def dataset_infer(
    file: Path,
    target: Annotated[str, typer.Option(help="Binary target column.")],
    id: Annotated[str, typer.Option("--id", help="Unique entity id column.")],
    time: Annotated[str | None, typer.Option(help="Event-time / batch column.")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: file stem).")] = None,
    slices: Annotated[list[str] | None, typer.Option("--slice", help="Slice column.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the spec YAML.")] = None,
) -> None:
    """Draft a dataset spec from a parquet or CSV file (review it, then point SCORELOOP_SPEC_PATH
    at it)."""
    try:
        spec = infer_spec(
            read_table(file),
            name=name or file.stem,
            target=target,
            id_column=id,
            time_column=time,
            slices=slices or [],
        )
    except SpecError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    destination = out or file.with_suffix(".spec.yaml")
    save_spec(spec, destination)
    console.print(
        f"wrote {destination}: {len(spec.features)} features "
        f"({len(spec.categorical_names)} categorical), id={spec.id.name}, "
        f"time={spec.time.name}, target={spec.target.name}"
    )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Landed batch/label files or folders.")],
) -> None:
    """Validate landed files and write validated, quarantine and label tables."""
    from pipelines.ingest import ingest_file, parse_landing_name
    from pipelines.validation import BatchReadError

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    params = load_params(settings.params_path)
    files: list[Path] = []
    for path in paths:
        files.extend(
            sorted(p for p in path.iterdir() if parse_landing_name(p)) if path.is_dir() else [path]
        )
    table = Table("file", "batch", "kind", "status", "rows", "accepted", "rejected", "reject rate")
    failed = 0
    for path in files:
        try:
            result = ingest_file(
                path, spec, settings.tables, max_reject_rate=params.validation.max_reject_rate
            )
        except BatchReadError as exc:
            failed += 1
            table.add_row(path.name, "", "", "[red]failed[/red]", "", "", "", exc.cause)
            continue
        v = result.validation
        colour = "green" if v.status == "accepted" else "yellow"
        table.add_row(
            path.name,
            v.batch_id,
            v.kind,
            f"[{colour}]{v.status}[/{colour}]",
            str(v.rows),
            str(v.accepted),
            str(v.rejected),
            f"{v.reject_rate:.2%}",
        )
    console.print(table)
    console.print(f"tables under {settings.tables}")
    if failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()
