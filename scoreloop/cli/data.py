"""``scoreloop dataset infer``, ``scoreloop simulate`` and ``scoreloop ingest``: data in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.errors import ScoreloopError
from pipelines.settings import get_settings

dataset_app = typer.Typer(help="Dataset specs: draft one for your own table.", no_args_is_help=True)
console = Console()


@dataset_app.command("infer")
def dataset_infer(
    file: Path,
    target: Annotated[str, typer.Option(help="Two-valued target column.")],
    id: Annotated[
        str | None, typer.Option("--id", help="Unique entity id (default: a row id is made).")
    ] = None,
    time: Annotated[str | None, typer.Option(help="Event-time column.")] = None,
    positive: Annotated[
        str | None, typer.Option(help="The positive class (default: the rarer one).")
    ] = None,
    time_format: Annotated[
        str | None, typer.Option(help="strptime format of a text time column (default: detected).")
    ] = None,
    batch_by: Annotated[
        str | None,
        typer.Option(help="year, month, week, day, or N batches (default: from span and size)."),
    ] = None,
    no_header: Annotated[
        bool, typer.Option("--no-header", help="The CSV file has no header line.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: file stem).")] = None,
    slices: Annotated[list[str] | None, typer.Option("--slice", help="Slice column.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the spec YAML.")] = None,
    params_out: Annotated[
        Path | None, typer.Option(help="Where to write the dataset's params.yaml.")
    ] = None,
) -> None:
    """Draft a dataset spec and its params from a parquet or CSV file as found.

    Then point SCORELOOP_SPEC_PATH and SCORELOOP_PARAMS_PATH at the two files it writes.
    """
    import yaml

    from pipelines.infer import infer_dataset

    settings = get_settings()
    base = yaml.safe_load(settings.params_path.read_text()) if settings.params_path.exists() else {}
    base = base or {}
    try:
        result = infer_dataset(
            file,
            target=target,
            id_column=id,
            time_column=time,
            positive=positive,
            time_format=time_format,
            batch_by=batch_by,
            header=False if no_header else None,
            name=name,
            slices=slices or [],
            base_gate=dict(base.get("gate") or {}),
        )
    except ScoreloopError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    spec_path = out or file.with_suffix(".spec.yaml")
    params_path = params_out or spec_path.with_name(
        spec_path.name.removesuffix(".spec.yaml").removesuffix(".yaml") + ".params.yaml"
    )
    from pipelines.spec import save_spec

    save_spec(result.spec, spec_path)
    for section, values in result.params.items():
        base[section] = {**(base.get(section) or {}), **values}
    params_path.write_text(
        "# params.yaml sized for this dataset by `scoreloop dataset infer` (review it)\n"
        + yaml.safe_dump(base, sort_keys=False, width=100)
    )
    for line in result.report():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {spec_path} and {params_path}; then:", markup=False)
    console.print(
        f"  export SCORELOOP_SPEC_PATH={spec_path} SCORELOOP_PARAMS_PATH={params_path}",
        markup=False,
    )


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Landed batch/label files or folders.")],
) -> None:
    """Validate landed files and write validated, quarantine and label tables.

    Every file gets an outcome: a file that cannot be read, a name that is not a batch or label
    file and a failed write are reported as failed, and the others are still processed. The
    exit code is the number of failed files (0 when all were ingested; at most 100).
    """
    from pipelines.ingest import ingest_file, is_in_flight, landing_name_problem, parse_landing_name
    from pipelines.params import load_params
    from pipelines.spec import load_spec
    from pipelines.validate import BatchReadError

    settings = get_settings()
    spec = load_spec(settings.spec_path)
    params = load_params(settings.params_path)
    table = Table("file", "batch", "kind", "status", "rows", "accepted", "rejected", "reject rate")
    files: list[Path] = []
    failed = 0
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for entry in sorted(path.iterdir()):
            if is_in_flight(entry) or entry.is_dir():
                why = "a folder" if entry.is_dir() else "hidden or still being written"
                table.add_row(_shown(entry), "", "", "skipped", "", "", "", why)
            elif (problem := landing_name_problem(entry)) is not None:
                failed += 1
                table.add_row(
                    _shown(entry), "", "", "[red]failed[/red]", "", "", "", escape(problem)
                )
            else:
                files.append(entry)
    for path in files:
        try:
            result = ingest_file(
                path, spec, settings.tables, max_reject_rate=params.validation.max_reject_rate
            )
        except Exception as exc:  # one file's fault never stops the others, nor prints a traceback
            failed += 1
            kind, batch_id = parse_landing_name(path) or ("", "")
            if isinstance(exc, BatchReadError):
                why = exc.cause
            elif isinstance(exc, ScoreloopError):
                why = str(exc)
            else:
                why = f"unexpected {type(exc).__name__}: {exc}"
            table.add_row(
                _shown(path), batch_id, kind, "[red]failed[/red]", "", "", "", escape(why)
            )
            continue
        v = result.validation
        colour = "green" if v.status == "accepted" else "yellow"
        note = f"{v.reject_rate:.2%}"
        if result.kept:
            note += f" (re-delivery; the accepted {Path(result.kept).name} is kept)"
        if result.duplicate_ids:
            note += f" ({result.duplicate_ids} id(s) also in other batches)"
        table.add_row(
            _shown(path),
            v.batch_id,
            v.kind,
            f"[{colour}]{v.status}[/{colour}]",
            str(v.rows),
            str(v.accepted),
            str(v.rejected),
            note,
        )
    console.print(table)
    console.print(f"tables under {settings.tables}")
    if failed:
        console.print(f"[red]{failed} file(s) failed[/red]")
        raise typer.Exit(min(failed, 100))


def _shown(path: Path) -> str:
    """A file name safe to print whatever bytes it holds, and free of rich markup."""
    from pipelines.ingest import printable_name

    return escape(printable_name(path))


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

    from pipelines.params import load_params
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.simulate import SimulationError, parse_fault
    from pipelines.simulate import simulate as run_simulation
    from pipelines.spec import load_spec

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
