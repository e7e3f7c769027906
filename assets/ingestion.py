"""Ingestion: one partition per landed batch; each body calls one ``pipelines`` function.

``raw_batch`` fingerprints the landed file, ``validated_batch`` + ``quarantine`` come from one
``pipelines.ingest.ingest_file`` call, ``labels`` ingests the label file of a batch when it lands
(later). The reject-rate checks are per partition (``partitions_def=batch_partitions``): a refused
batch is a failed check with ERROR severity on its partition, its run still succeeds (a refusal
is an expected outcome, not a failed run), ``validated_batch`` says ``status: refused`` with no
rows, and ``scores`` skips it. ``landing_sensor`` turns new files into partitions and runs.
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.metadata import number
from assets.partitions import BATCHES, batch_partitions
from assets.resources import RESOURCES, ScoreloopResource
from pipelines.ingest import IngestResult, ingest_file
from pipelines.landing import (
    dump_cursor,
    find_landed,
    ingest_log_entry,
    ingest_report,
    load_cursor,
    not_yet_ingested,
    scan_landing,
    unrecognised_files,
)
from pipelines.params import load_params
from pipelines.spec import load_spec
from pipelines.validate import BatchReadError, Kind, file_version

GROUP = "ingestion"
RAW_BATCH = dg.AssetKey("raw_batch")
VALIDATED_BATCH = dg.AssetKey("validated_batch")
QUARANTINE = dg.AssetKey("quarantine")
LABELS = dg.AssetKey("labels")


def _landed(scoreloop: ScoreloopResource, kind: Kind, batch_id: str) -> Any:
    try:
        return find_landed(scoreloop.settings().landing, kind, batch_id)
    except FileNotFoundError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _ingest(scoreloop: ScoreloopResource, kind: Kind, batch_id: str) -> IngestResult:
    settings = scoreloop.settings()
    path = _landed(scoreloop, kind, batch_id)
    try:
        return ingest_file(
            path,
            load_spec(settings.spec_path),
            settings.tables,
            max_reject_rate=load_params(settings.params_path).validation.max_reject_rate,
            kind=kind,
            batch_id=batch_id,
        )
    except BatchReadError as exc:
        raise dg.Failure(
            description=f"cannot read {exc.path}: {exc.cause}",
            metadata={"file": dg.MetadataValue.path(str(exc.path)), "cause": exc.cause},
        ) from exc


def _metadata(report: dict[str, Any], quarantine: bool = False) -> dict[str, Any]:
    uri, version = (
        (report["quarantine_uri"], report["quarantine_version"])
        if quarantine
        else (report["table_uri"], report["table_version"])
    )
    return {
        "status": report["status"],
        "source_file": dg.MetadataValue.path(report["source_file"]),
        "dagster/row_count": report["quarantined"] if quarantine else report["accepted"],
        "rows": report["rows"],
        "accepted": report["accepted"],
        "rejected": report["rejected"],
        "reject_rate": number(report["reject_rate"]),
        "max_reject_rate": number(report["max_reject_rate"]),
        "top_reasons": dg.MetadataValue.md(report["top_reasons"]),
        "table_uri": dg.MetadataValue.path(uri),
        "table_version": version,
        "data_version": report["data_version"],
        **(
            {}
            if quarantine
            else {
                "ignored_columns": report["ignored_columns"],
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(n, t) for n, t in report["schema"].items()]
                ),
            }
        ),
    }


@dg.asset(partitions_def=batch_partitions, group_name=GROUP, kinds={"file"})
def raw_batch(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> dg.MaterializeResult[Any]:
    """The landed records file of a batch, fingerprinted (md5 = the batch's data version)."""
    path = _landed(scoreloop, "records", context.partition_key)
    version = file_version(path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": path.stat().st_size,
            "md5": version,
        },
        data_version=dg.DataVersion(version),
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(VALIDATED_BATCH, deps=[RAW_BATCH], description="Validated rows (Delta)."),
        dg.AssetSpec(QUARANTINE, deps=[RAW_BATCH], description="Rejected rows with reasons."),
    ],
    partitions_def=batch_partitions,
    group_name=GROUP,
)
def validated_batch(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> Iterator[dg.MaterializeResult[Any]]:
    """Validate the batch (``pipelines.ingest.ingest_file``): valid rows and quarantine."""
    result = _ingest(scoreloop, "records", context.partition_key)
    report = ingest_report(result, scoreloop.settings().tables)
    version = dg.DataVersion(result.data_version)
    yield dg.MaterializeResult(
        asset_key=VALIDATED_BATCH, metadata=_metadata(report), data_version=version
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE, metadata=_metadata(report, quarantine=True), data_version=version
    )


@dg.asset(partitions_def=batch_partitions, group_name=GROUP, kinds={"delta"})
def labels(
    context: dg.AssetExecutionContext, scoreloop: ScoreloopResource
) -> dg.MaterializeResult[Any]:
    """Labels of the batch's records, ingested when ``labels_<batch>`` lands (after the batch)."""
    result = _ingest(scoreloop, "labels", context.partition_key)
    report = ingest_report(result, scoreloop.settings().tables)
    return dg.MaterializeResult(
        metadata=_metadata(report), data_version=dg.DataVersion(result.data_version)
    )


def _reject_rate_check(scoreloop: ScoreloopResource, kind: Kind, batch_id: str) -> Any:
    entry = ingest_log_entry(scoreloop.settings().tables, kind, batch_id)
    if entry is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"batch {batch_id} was never ingested",
        )
    rate = entry["reject_rate"]
    return dg.AssetCheckResult(
        passed=entry["status"] == "accepted",
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"batch {batch_id} {entry['status']}"
            + (f": {entry['error']}" if entry["error"] else f", reject rate {rate:.2%}")
        ),
        metadata={
            "status": entry["status"],
            "reject_rate": number(rate if rate is not None else 1.0),
            "rows": entry["rows"] or 0,
            "rejected": entry["rejected"] or 0,
        },
    )


# Partitioned asset checks are a preview feature of Dagster 1.13 (a PreviewWarning when defined):
# they put the refusal on the batch's own partition in the UI instead of on the whole asset.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(asset=VALIDATED_BATCH, partitions_def=batch_partitions)
    def reject_rate_within_limit(
        context: dg.AssetCheckExecutionContext, scoreloop: ScoreloopResource
    ) -> dg.AssetCheckResult:
        """The batch was accepted (reject rate <= validation.max_reject_rate), per the ingest
        log. A refusal fails with ERROR severity on the batch's partition; the run succeeds and
        ``scores`` skips the batch."""
        return _reject_rate_check(scoreloop, "records", context.partition_key)  # type: ignore[no-any-return]

    @dg.asset_check(asset=LABELS, partitions_def=batch_partitions)
    def labels_reject_rate_within_limit(
        context: dg.AssetCheckExecutionContext, scoreloop: ScoreloopResource
    ) -> dg.AssetCheckResult:
        """The label file was accepted (reject rate <= max_reject_rate), per the ingest log."""
        return _reject_rate_check(scoreloop, "labels", context.partition_key)  # type: ignore[no-any-return]


INGEST_JOB = "ingest"
#: What one landed file materialises in an ``ingest`` run (the checks of these assets come along).
RECORDS_SELECTION = [RAW_BATCH, VALIDATED_BATCH, QUARANTINE]
LABELS_SELECTION = [LABELS]

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(*RECORDS_SELECTION, *LABELS_SELECTION),
    description="Ingest one landed batch: fingerprint, validate and quarantine its records file, "
    "and/or ingest its labels file (a run selects what landed).",
)


@dg.sensor(job=ingest_job, minimum_interval_seconds=30)
def landing_sensor(
    context: dg.SensorEvaluationContext, scoreloop: ScoreloopResource
) -> dg.SensorResult | dg.SkipReason:
    """New or changed files in the landing folder become partitions and one run each."""
    landing = scoreloop.settings().landing
    try:
        new, seen = scan_landing(landing, load_cursor(context.cursor))
    except FileNotFoundError as exc:
        return dg.SkipReason(str(exc))
    odd, seen = unrecognised_files(landing, seen)
    for entry in odd:  # every landed file gets an outcome: these are failed, and say why
        context.log.warning(f"landing file failed, not ingested: {entry.reason}")
    not_ingested = (
        f"; {len(odd)} file(s) not ingested: " + "; ".join(f.reason for f in odd[:5]) if odd else ""
    )
    if not new and not odd:
        return dg.SkipReason(f"no new files in {landing}")
    if not new:
        return dg.SensorResult(
            skip_reason=f"no new batch files in {landing}{not_ingested}", cursor=dump_cursor(seen)
        )
    new = not_yet_ingested(new, scoreloop.settings().tables)
    if not new:  # e.g. a sensor started after `scoreloop demo` ingested everything
        return dg.SensorResult(
            skip_reason=f"new files in {landing} are already ingested{not_ingested}",
            cursor=dump_cursor(seen),
        )
    known = set(context.instance.get_dynamic_partitions(BATCHES))
    partitions = sorted({f.batch_id for f in new} - known)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f.run_key,
                job_name=INGEST_JOB,
                partition_key=f.batch_id,
                asset_selection=RECORDS_SELECTION if f.kind == "records" else LABELS_SELECTION,
                tags={"scoreloop/file": str(f.path)},
            )
            for f in new
        ],
        dynamic_partitions_requests=(
            [batch_partitions.build_add_request(partitions)] if partitions else []
        ),
        cursor=dump_cursor(seen),
    )


defs = dg.Definitions(
    assets=[raw_batch, validated_batch, labels],
    asset_checks=[reject_rate_within_limit, labels_reject_rate_within_limit],
    jobs=[ingest_job],
    sensors=[landing_sensor],
    resources=RESOURCES,
)
