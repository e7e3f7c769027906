"""``scoreloop release resolve|fetch|build|smoke|rollout|verify|rollback``: the deploy steps.

Each command is one step of .github/workflows/deploy.yml, runnable by hand with the same result.
Results go to stdout as ``key=value`` lines (append them to ``$GITHUB_OUTPUT`` in a workflow);
progress and errors go to stderr. A failed step exits 2 with what failed and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.errors import ScoreloopError
from scoreloop.release.errors import ReleaseError

err = Console(stderr=True)
release_app = typer.Typer(
    help="Deploy steps: resolve a prod tag, fetch, build, smoke, roll out, verify, roll back.",
    no_args_is_help=True,
)

ReleaseDir = Annotated[Path, typer.Argument(help="The release folder `fetch` wrote.")]
DeployDir = Annotated[
    Path | None,
    typer.Option(help="Deploy state dir (default SCORELOOP_DEPLOY_DIR or <state root>/deploy)."),
]


def _emit(**outputs: object) -> None:
    for key, value in outputs.items():
        print(f"{key}={value}")


@contextmanager
def _step(name: str) -> Iterator[None]:
    try:
        yield
    except (ReleaseError, ScoreloopError) as exc:
        err.print(f"[red]release {name} failed:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc


@release_app.command("resolve")
def resolve_command(
    ref: Annotated[str, typer.Argument(help="`<model>#prod#<n>` or `refs/tags/<model>#prod#<n>`.")],
) -> None:
    """The version a pushed prod tag promoted (syncing the registry from its remote first)."""
    from scoreloop.release.resolve import resolve

    with _step("resolve"):
        found = resolve(ref)
    if not found.current:
        err.print(f"{found.tag} ({found.version}) was superseded: champion is {found.champion}")
    _emit(**found.outputs())


@release_app.command("fetch")
def fetch_command(
    version: str,
    out: Annotated[Path | None, typer.Option(help="Release folder (replaced).")] = None,
) -> None:
    """Pull the version's model from the DVC remote, copy its snapshot, pick a smoke case."""
    from scoreloop.release.fetch import fetch

    with _step("fetch"):
        release = fetch(version, out)
    err.print(f"fetched {version} ({release.commit[:12]}) into {release.directory}")
    _emit(release_dir=release.directory, snapshot=release.snapshot_id)


@release_app.command("build")
def build_command(release_dir: ReleaseDir) -> None:
    """Build the serving image of a fetched release (tagged <version>-<commit>, OCI labels)."""
    from scoreloop.release.build import build_image
    from scoreloop.release.fetch import BUNDLE_DIR, SNAPSHOTS_DIR

    with _step("build"):
        built = build_image(release_dir / BUNDLE_DIR, release_dir / SNAPSHOTS_DIR)
    err.print(f"built {built.image}: {built.size_mb} MB in {built.seconds} s (base {built.base})")
    _emit(image=built.image, size_mb=built.size_mb, build_s=built.seconds)


@release_app.command("smoke")
def smoke_command(image: str, release_dir: ReleaseDir) -> None:
    """Run the image on loopback: non-root, ready, healthy, right version, scores agree."""
    from scoreloop.release.fetch import SNAPSHOTS_DIR, read_case
    from scoreloop.release.smoke import smoke_test

    with _step("smoke"):
        result = smoke_test(image, release_dir / SNAPSHOTS_DIR, read_case(release_dir))
    err.print(
        f"smoke ok: uid {result.uid}, {result.model_version}, entity {result.entity_id} "
        f"{result.batch_score} = lookup {result.lookup_score} = predict {result.predict_score}"
    )
    _emit(smoke_s=result.seconds)


@release_app.command("rollout")
def rollout_command(
    image: str,
    release_dir: ReleaseDir,
    deploy_dir: DeployDir = None,
    front_port: Annotated[int | None, typer.Option(help="Front port (first rollout).")] = None,
    name: Annotated[str | None, typer.Option(help="Container name prefix (first)")] = None,
) -> None:
    """Blue/green: start the new colour, switch the front once it is ready, stop the old one."""
    from scoreloop.release.fetch import SNAPSHOTS_DIR
    from scoreloop.release.rollout import rollout

    with _step("rollout"):
        result = rollout(
            image,
            release_dir / SNAPSHOTS_DIR,
            deploy_dir=deploy_dir,
            name=name,
            front_port=front_port,
        )
    err.print(f"{result.model_version} live on {result.front_url} ({result.colour})")
    _emit(front_url=result.front_url, colour=result.colour, rollout_s=result.seconds)


@release_app.command("verify")
def verify_command(version: str, deploy_dir: DeployDir = None) -> None:
    """Through the front: ready, and every /model answer names VERSION."""
    from scoreloop.release.verify import verify

    with _step("verify"):
        result = verify(version, deploy_dir=deploy_dir)
    err.print(f"verified {version} on {result.front_url} ({result.requests} requests)")
    _emit(verified=version)


@release_app.command("rollback")
def rollback_command(
    version: Annotated[str, typer.Argument(help="The version whose release failed.")],
    reason: Annotated[str, typer.Option(help="Why (recorded and alerted).")] = "deploy failed",
    deploy_dir: DeployDir = None,
) -> None:
    """Undo a failed release: previous colour serves, prod back to the previous champion (pushed
    tag), alert sent. Exit 1 when some part needs a person."""
    from scoreloop.release.recover import recover

    with _step("rollback"):
        result = recover(version, reason=reason, deploy_dir=deploy_dir)
    for problem in result.problems:
        err.print(f"[red]{problem}[/red]")
    err.print(
        f"rolled back from {version}: serving {result.serving_version}, champion {result.champion}"
    )
    _emit(serving=result.serving_version or "", champion=result.champion or "")
    if not result.ok:
        raise typer.Exit(1)
