"""Maintenance: a daily job (its schedule off until switched on) that runs
``pipelines.maintain.maintain`` (the same step as ``scoreloop maintain``)."""

import dagster as dg

from assets.resources import RESOURCES, ScoreloopResource
from pipelines.maintain import maintain


@dg.op
def maintain_state(context: dg.OpExecutionContext, scoreloop: ScoreloopResource) -> dg.Output[None]:
    """Vacuum old Delta files (keeping pinned versions), drop killed writes' leftovers."""
    report = maintain(scoreloop.settings())
    for item in report.removed:
        context.log.info(f"removed {item.path} ({item.bytes} bytes): {item.why}")
    return dg.Output(
        None,
        metadata={
            "removed": len(report.removed),
            "bytes_freed": report.bytes_freed,
            "pinned": str(report.pinned),
        },
    )


@dg.job(description="Vacuum the Delta tables and remove leftovers of killed writes.")
def maintenance_job() -> None:
    maintain_state()


maintenance_schedule = dg.ScheduleDefinition(
    job=maintenance_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily maintenance (off by default: switch it on in the UI).",
)

defs = dg.Definitions(jobs=[maintenance_job], schedules=[maintenance_schedule], resources=RESOURCES)
