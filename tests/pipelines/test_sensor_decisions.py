"""What the monitoring sensors decide, as pure functions without Dagster: the retraining request
(with its dedup per champion and newest batch), the failed-run alert, the ingest-alert cursor, the
failed-check alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from support.scoring import ingest_batch

from pipelines.alerts import (
    FailedCheck,
    StepFailure,
    failed_run_alert,
    failed_runs_after,
    pending_check_alerts,
    pending_failed_runs,
    pending_ingest_alerts,
)
from pipelines.settings import Settings
from pipelines.spec import DatasetSpec
from pipelines.staleness import (
    MAX_TAG,
    NoRetraining,
    RetrainingRequest,
    StalenessDecision,
    TriggerCursor,
    TriggerRules,
    retraining_request,
)


def _decision(stale: bool, reasons: list[str] | None = None) -> StalenessDecision:
    return StalenessDecision(
        stale=stale, reasons=reasons or [], details={"champion_version": "v0.0.3"}
    )


def test_no_request_without_a_champion_or_when_fresh() -> None:
    assert retraining_request(None, "2016-01", None) == NoRetraining(
        "no champion model promoted yet"
    )
    assert retraining_request(_decision(False), "2016-01", None) == NoRetraining(
        "champion v0.0.3 is not stale"
    )


def test_a_stale_champion_is_retrained_once_per_newest_batch() -> None:
    stale = _decision(True, ["age: 13 batches since the newest training batch", "x" * 2000])
    first = retraining_request(stale, "2016-01", None)
    assert isinstance(first, RetrainingRequest)
    assert first.run_key == "stale-v0.0.3-2016-01"
    assert first.tags["scoreloop/trigger"] == "staleness"
    assert first.tags["scoreloop/stale_champion"] == "v0.0.3"
    assert first.tags["scoreloop/stale_reasons"].startswith("age: 13 batches")
    assert len(first.tags["scoreloop/stale_reasons"]) == MAX_TAG
    assert first.alert.kind == "stale"
    assert first.alert.message.startswith("retraining requested: age: 13 batches")
    assert first.alert.details["reasons"] == stale.reasons  # the alert keeps every word

    assert TriggerCursor.parse(first.cursor) == TriggerCursor("stale-v0.0.3-2016-01", "2016-01")

    again = retraining_request(stale, "2016-01", first.cursor)
    assert again == NoRetraining("retraining already requested for stale-v0.0.3-2016-01")
    # without a cooldown, a new batch that is still stale asks again
    later = retraining_request(stale, "2016-02", first.cursor, accepted=["2016-01", "2016-02"])
    assert isinstance(later, RetrainingRequest) and later.run_key == "stale-v0.0.3-2016-02"
    assert isinstance(retraining_request(stale, None, None), RetrainingRequest)
    # a cursor stored as a plain run key (before it was JSON) still dedups
    assert isinstance(retraining_request(stale, "2016-01", first.run_key), NoRetraining)


def test_one_retrain_per_drift_episode() -> None:
    """A stale champion waits for labelled batches of the new data, is retrained once, and the
    cooldown holds off a second request while the same episode goes on."""
    stale = _decision(True, ["feature drift: 2 of the last 3 batches"])
    rules = TriggerRules(min_labelled_batches=4, cooldown_batches=6)
    months = [f"2016-{m:02d}" for m in range(1, 13)]
    cursor: str | None = None
    requested: list[str] = []
    reasons: dict[str, str] = {}
    for number, batch in enumerate(months, start=1):
        # labels land two batches late: labelled batches newer than the champion's training
        outcome = retraining_request(
            stale,
            batch,
            cursor,
            accepted=months[:number],
            labelled_since_training=max(0, number - 2),
            rules=rules,
        )
        if isinstance(outcome, RetrainingRequest):
            requested.append(batch)
            cursor = outcome.cursor
        else:
            reasons[batch] = outcome.reason
    # 4 labelled batches at 2016-06; then nothing for 6 batches; 2016-12 is a new episode
    assert requested == ["2016-06", "2016-12"]
    assert reasons["2016-05"] == (
        "champion v0.0.3 is stale, waiting for labelled batches: 3 of 4 newer than its training "
        "data"
    )
    assert reasons["2016-07"] == (
        "cooldown: retraining was requested at batch 2016-06, 1 of 6 batches ago"
    )
    assert reasons["2016-11"].endswith("5 of 6 batches ago")
    # a fresh champion (just retrained) has too few labelled batches, even without a cursor
    assert isinstance(
        retraining_request(stale, "2017-01", None, labelled_since_training=1, rules=rules),
        NoRetraining,
    )
    # unknown training batches: the minimum is not enforced
    assert isinstance(
        retraining_request(stale, "2017-01", None, labelled_since_training=None, rules=rules),
        RetrainingRequest,
    )


def test_failed_run_alert_names_each_step_and_falls_back_to_the_run_message() -> None:
    alert = failed_run_alert(
        "ingest",
        "run-1",
        "2015-07",
        [
            StepFailure("raw_batch", description="cannot read batch_2015-07.parquet"),
            StepFailure("validated_batch", error="ValueError: boom\n"),
            StepFailure("scores"),
        ],
        "Execution of run failed.",
    )
    assert alert.kind == "run_failure" and alert.batch_id == "2015-07"
    assert alert.title == "run of ingest (partition 2015-07) failed"
    assert alert.message == (
        "raw_batch: cannot read batch_2015-07.parquet; validated_batch: ValueError: boom"
    )
    assert alert.details["failed_steps"] == ["raw_batch", "validated_batch", "scores"]
    assert failed_run_alert("job", "run-2", None, [], "run was killed").message == (
        "run was killed"
    )
    assert failed_run_alert("job", "run-3", None, [], None).message == "run failed"


def test_ingest_alert_cursor_round_trips(
    settings: Settings, acs: pl.DataFrame, spec: DatasetSpec
) -> None:
    empty = pending_ingest_alerts(settings.tables, None)
    assert (empty.alerts, empty.cursor) == ([], "{}")
    ingest_batch(settings, acs, spec, "2015-01", start=0, rows=200, bad=50)
    first = pending_ingest_alerts(settings.tables, empty.cursor)
    assert [(a.kind, a.batch_id) for a in first.alerts] == [("batch_refused", "2015-01")]
    assert pending_ingest_alerts(settings.tables, first.cursor).alerts == []
    assert pending_ingest_alerts(settings.tables, first.cursor).cursor == first.cursor


def test_failed_checks_alert_once_in_id_order_and_only_error_or_gate() -> None:
    reject = FailedCheck(9, "validated_batch", "reject_rate_within_limit", "ERROR", "2015-02")
    rows = FailedCheck(10, "scores", "row_count_matches", "ERROR", "2015-02")
    gate = FailedCheck(4, "evaluation", "gate", "WARN", description="refused: floor")
    drift = FailedCheck(12, "drift", "no_feature_drift", "WARN", "2015-02")
    alerts, cursor = pending_check_alerts([reject, rows, drift, gate], None)
    # the refused batch is alerted once, by the ingest-alert sensor (batch_refused), not here
    assert [(a.kind, a.severity) for a in alerts] == [
        ("check_refused", "info"),
        ("check_failed", "error"),
    ]
    assert alerts[0].message == "refused: floor"
    assert alerts[1].batch_id == "2015-02"
    assert alerts[1].title == "check scores:row_count_matches (partition 2015-02) failed"
    assert cursor == "12"  # the WARN drift check moves the cursor but does not alert
    assert pending_check_alerts([reject, rows, drift, gate], cursor) == ([], "12")
    later = FailedCheck(13, "labels", "labels_reject_rate_within_limit", "ERROR", "2015-03")
    newest = FailedCheck(14, "scores", "row_count_matches", "ERROR", "2015-03")
    again, cursor = pending_check_alerts([reject, later, newest], "12")
    assert [a.title for a in again] == ["check scores:row_count_matches (partition 2015-03) failed"]
    assert cursor == "14"


def test_failed_runs_are_alerted_once_each_even_in_the_same_instant() -> None:
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    t1 = t0 + timedelta(seconds=1)
    # First tick: no cursor, every run that failed so far, oldest failure first.
    first = pending_failed_runs([("b", t1), ("a", t0), ("c", t1)], None)
    assert first.run_ids == ["a", "b", "c"]
    assert failed_runs_after(first.cursor) == t1 and failed_runs_after(None) is None
    # The store may hand back runs at the cursor's instant again: not alerted twice, but a run
    # recorded in that same instant after the tick is.
    again = pending_failed_runs([("b", t1), ("c", t1), ("d", t1)], first.cursor)
    assert again.run_ids == ["d"]
    assert pending_failed_runs([("b", t1), ("c", t1), ("d", t1)], again.cursor).run_ids == []
    later = pending_failed_runs([("d", t1), ("e", t1 + timedelta(seconds=5))], again.cursor)
    assert later.run_ids == ["e"]
    # Nothing failed: the cursor stays.
    assert pending_failed_runs([], later.cursor).cursor == later.cursor
