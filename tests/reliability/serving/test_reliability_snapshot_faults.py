"""Changes to the files of the snapshot being served, under a real ``scoreloop serve`` process.

The served file used to be memory-mapped: truncating it in place killed the service (SIGBUS,
exit 135, nothing logged). It is now a verified copy in memory, so the service answers from the
last good snapshot whatever happens to the files under it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
from support.serving import TOKEN

from pipelines.settings import BUNDLED_SPEC
from pipelines.snapshot import SCORES_FILE, publish_snapshot, read_current
from scoreloop.serve_process import ServiceProcess


def _answers(base: str, ids: list[int]) -> list[object]:
    with httpx.Client(base_url=base, timeout=10.0) as http:
        single = [http.get(f"/scores/{i}").json() for i in ids]
        many = http.post("/scores/lookup", json={"ids": ids}).json()
        return [single, many, http.get("/model").json()]


@pytest.mark.slow
def test_truncating_and_overwriting_the_served_files_in_place(
    snapshots: Path, state: Path, tmp_path: Path, bundle_v2: Path, scores_v2: pl.DataFrame
) -> None:
    env = {
        "SCORELOOP_STATE_ROOT": str(state),
        "SCORELOOP_ADMIN_TOKEN": TOKEN,
        "SCORELOOP_RELOAD_INTERVAL_S": "0.2",
    }
    with ServiceProcess(env, log=tmp_path / "server.log", ready_timeout=120) as service:
        base, process = service.base_url, service.process
        assert process is not None
        manifest = read_current(snapshots)
        assert manifest is not None
        folder = snapshots / manifest.snapshot_id
        ids = httpx.post(f"{base}/scores/lookup", json={"ids": list(range(50_000, 60_000))[:1000]})
        known = [row["entity_id"] for row in ids.json()["found"]][:20]
        assert known
        before = _answers(base, known)

        scores = folder / SCORES_FILE
        os.truncate(scores, 100_000)  # the `truncate -s 100000` of the report
        assert _answers(base, known) == before
        with scores.open("r+b") as handle:  # overwrite in place, same size
            handle.write(b"\0" * 100_000)
        os.truncate(scores, 0)
        for name in ("model.cbm", "card.md", "spec.yaml"):
            (folder / name).unlink()
        shutil.copyfile(BUNDLED_SPEC, folder / "spec.yaml")  # a different file where one was
        assert _answers(base, known) == before
        assert (
            httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
                "result"
            ]
            == "unchanged"
        )
        assert _answers(base, known) == before
        assert process.poll() is None

        # A good snapshot published afterwards is still picked up.
        new = publish_snapshot(scores_v2, bundle_v2, BUNDLED_SPEC, snapshots)
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz").json()["snapshot_id"] != new.snapshot_id:
            assert time.monotonic() < deadline, "the new snapshot was not loaded"
            time.sleep(0.1)
        assert _answers(base, known)[0][0]["model_version"] == "v0.0.2"  # type: ignore[index]
    assert process.returncode in (0, -15), (tmp_path / "server.log").read_text()[-2000:]
