"""``scoreloop dataset infer``, ``scoreloop simulate`` and ``scoreloop ingest``: data in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.params import load_params
from pipelines.settings import get_settings
from pipelines.spec import SpecError, infer_spec, load_spec, read_table, save_spec

dataset_app = typer.Typer(help="Dataset specs: draft one for your own table.", no_args_is_help=True)
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


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Landed batch/label files or folders.")],
) -> None:
    """Validate landed files and write validated, quarantine and label tables."""
    from pipelines.ingest import ingest_file, parse_landing_name
    from pipelines.validate import BatchReadError

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
            kind, batch_id = parse_landing_name(path) or ("", "")
            table.add_row(path.name, batch_id, kind, "[red]failed[/red]", "", "", "", exc.cause)
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


def simulate(
    source: Annotated[
        Path | None,
        typer.Option(
            help="Table to replay (default: the bundled ACS data; needed for your own spec)."
        ),
    ] = None,
    landing: Annotated[
        Path | None, typer.Option(help="Landing folder (default: <state root>/landing).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Land only the first N batches.")] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option("--fault", help="BATCH:FAULT, e.g. 2015-03:corrupt_rows (repeatable)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed (default: params.yaml simulate.seed).")
    ] = None,
) -> None:
    """Replay a dataset into the landing folder as batch and label files (optionally faulty)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from pipelines.settings import BUNDLED_SPEC
    from pipelines.simulate import SimulationError, parse_fault
    from pipelines.simulate import simulate as run_simulation

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    knobs = load_params(settings.params_path).simulate
    if source is None:
        if settings.spec_path.resolve() != BUNDLED_SPEC.resolve():
            console.print("[red]error:[/red] --source is required with your own spec")
            raise typer.Exit(2)
        source = BUNDLED_SPEC.parent / "employment_MA.parquet"
    faults: dict[str, list[str]] = {}
    try:
        for text in fault or []:
            batch_id, name = parse_fault(text)
            faults.setdefault(batch_id, []).append(name)
    except SimulationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    destination = landing or settings.landing
    with Progress(
        TextColumn("[bold]landing[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=None)

        def advance(path: Path) -> None:
            progress.update(task, advance=1, description=path.name)

        try:
            result = run_simulation(
                spec,
                source,
                destination,
                seed=knobs.seed if seed is None else seed,
                batches_per_period=knobs.batches_per_period,
                label_lag=knobs.label_lag,
                faults=faults,
                limit=limit,
                on_file=advance,
            )
        except SimulationError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    table = Table("batch", "rows", "records file", "faults")
    for batch_id in result.batches:
        records = next(p for p in result.records_files if p.stem == f"batch_{batch_id}")
        table.add_row(
            batch_id,
            str(result.rows[batch_id]),
            records.name,
            ", ".join(result.faults.get(batch_id, [])) or "-",
        )
    console.print(table)
    console.print(
        f"landed {len(result.batches)} batches and {len(result.label_files)} label files "
        f"in {destination} (label lag {knobs.label_lag})"
    )


def register_commands(app: typer.Typer) -> None:
    """Add ``dataset infer``, ``simulate`` and ``ingest`` to the ``scoreloop`` app."""
    app.add_typer(dataset_app, name="dataset")
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)
