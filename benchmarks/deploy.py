"""Deploy benchmark: lead time of a release (build -> smoke -> blue/green rollout -> verify) and
failed requests across the switch, on real containers behind the haproxy front; and the serving
image's size against an image with every runtime dependency (dagster, dvc, gto, ...).

Needs podman (``make container``). Two tiny real model versions are trained and scored with the
project's own code; v0.0.1 is rolled out first, then v0.0.2 is released under a lookup load.
The lead time here starts at the build (no tag push in this script; ``make cicd`` measures that).
``SCORELOOP_BENCH_SKIP_ALLDEPS=1`` skips building the all-dependencies image (the ratio then
reads n/a). ``SCORELOOP_BENCH_DEPLOY_NAME`` (default ``scoreloop-bench``) names the containers and
``SCORELOOP_BENCH_REPOSITORY`` (default ``localhost/scoreloop-serving``) the images, so two runs on
one machine do not meet. Always exits 0: the figures are the result.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_release(root: Path, version: str, seed_rows: int) -> tuple[Path, Path, object]:
    """A model bundle, its published snapshot (readable by the image's user) and a smoke case."""
    import polars as pl
    from scoring import train  # benchmarks/scoring.py: the same tiny real model

    from pipelines.score import score_frame
    from pipelines.settings import BUNDLED_SPEC
    from pipelines.snapshot import publish_snapshot
    from pipelines.spec import load_spec
    from scoreloop.release.smoke import SmokeCase

    spec = load_spec(BUNDLED_SPEC)
    bundle_dir = root / f"bundle-{version}"
    bundle = train(spec, bundle_dir, rows=seed_rows, iterations=30, version=version)
    rows = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet").slice(100_000, 1000)
    scores = score_frame(bundle, rows, spec, thread_count=2, model_version=version).with_columns(
        pl.lit("2018-12").alias("batch_id"),
        pl.lit(datetime(2026, 11, 1, tzinfo=UTC)).alias("scored_at"),
        pl.lit("bench").alias("data_version"),
    )
    snapshots = root / f"snapshots-{version}"
    publish_snapshot(scores, bundle_dir, BUNDLED_SPEC, snapshots)
    for path in [snapshots, *snapshots.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    record = rows.row(0, named=True)
    case = SmokeCase(
        entity_id=record[spec.id.name],
        score=float(scores["score"][0]),
        record={name: record[name] for name in spec.feature_names},
    )
    return bundle_dir, snapshots, case


def main() -> None:
    from scoreloop.release.build import DEFAULT_REPOSITORY, build_image
    from scoreloop.release.load import LookupLoad
    from scoreloop.release.rollout import rollout, teardown
    from scoreloop.release.smoke import smoke_test
    from scoreloop.release.verify import verify
    from scoreloop.serve_process import free_port

    root = Path(tempfile.mkdtemp(prefix="scoreloop-bench-deploy-", dir="/var/tmp"))
    root.chmod(0o755)
    build_dir = Path(tempfile.gettempdir()) / "scoreloop-bench-build"
    deploy_dir = root / "deploy"
    failed: int | str = "n/a"
    lead: float | str = "n/a"
    serving_mb: float | str = "n/a"
    ratio = "n/a"
    name = os.environ.get("SCORELOOP_BENCH_DEPLOY_NAME", "scoreloop-bench")
    repository = os.environ.get("SCORELOOP_BENCH_REPOSITORY", DEFAULT_REPOSITORY)
    try:
        bundle1, snapshots1, _ = make_release(root, "v0.0.1", 3000)
        bundle2, snapshots2, case2 = make_release(root, "v0.0.2", 4000)
        first = build_image(bundle1, snapshots1, build_dir=build_dir, repository=repository)
        live = rollout(
            first.image,
            snapshots1,
            deploy_dir=deploy_dir,
            name=name,
            front_port=free_port(),
        )
        print(f"v0.0.1 live on {live.front_url} ({live.colour})")

        started = time.perf_counter()
        built = build_image(bundle2, snapshots2, build_dir=build_dir, repository=repository)
        smoked = smoke_test(built.image, snapshots2, case2)  # type: ignore[arg-type]
        import polars as pl

        from pipelines.snapshot import SCORES_FILE, current_id

        snapshot_id = current_id(snapshots1)
        ids = pl.read_ipc(snapshots1 / str(snapshot_id) / SCORES_FILE)["entity_id"].to_list()
        with LookupLoad(live.front_url, ids) as load:
            rolled = rollout(built.image, snapshots2, deploy_dir=deploy_dir)
            time.sleep(1.0)  # keep the load on the new colour for a moment
        checked = verify("v0.0.2", deploy_dir=deploy_dir)
        lead = round(time.perf_counter() - started, 1)
        result = load.result()
        failed = result.failed
        serving_mb = built.size_mb
        print(f"deploy build_s: {built.seconds} (cached layers; image {built.image})")
        print(f"deploy smoke_s: {smoked.seconds} (ready in {smoked.ready_s} s, uid {smoked.uid})")
        print(
            f"deploy rollout_s: {rolled.seconds} (new colour ready in {rolled.ready_s} s, "
            f"switch {rolled.switch_s} s); verify_s: {checked.seconds}"
        )
        print(f"deploy load: {result.ok} ok, {result.failed} failed, versions {result.versions}")
        if result.failures:
            print(f"deploy failures (first): {result.failures[:3]}")
        if os.environ.get("SCORELOOP_BENCH_SKIP_ALLDEPS") != "1":
            everything = build_image(
                bundle2, snapshots2, build_dir=build_dir, variant="all", repository=repository
            )
            ratio = f"{built.size_mb / everything.size_mb:.2f}"
            print(
                f"deploy images: serving {built.size_mb} MB, all dependencies "
                f"{everything.size_mb} MB ({everything.image})"
            )
    except Exception:  # the figures so far are still printed; the error says why the rest is n/a
        traceback.print_exc()
    finally:
        try:
            teardown(deploy_dir)
        except Exception:
            traceback.print_exc()
        shutil.rmtree(root, ignore_errors=True)
    print(f"deploy serving_to_alldeps_ratio: {ratio}")
    print(f"bench deploy_failed_requests: {failed} (goal 0)")
    print(f"bench deploy_lead_time_s: {lead}")
    print(f"bench serving_image_mb: {serving_mb} (goal <= 0.5 of the all-dependencies image)")
    # The same goal as a figure benchmarks/record.py checks (the line above is informative).
    print(f"bench serving_image_ratio: {ratio} (goal <= 0.5)")


if __name__ == "__main__":
    main()
    sys.exit(0)
