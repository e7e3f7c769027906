"""Build the serving image of one model version: serving-only wheels, a minimal context, labels.

The image holds serving/ and the few pipelines modules it imports, on the ``serving`` dependency
group of uv.lock (no dagster, dvc, gto, typer or training code). Wheels are built on the host
(``pip wheel`` from ``uv export``) because pip inside a build cannot reach the index here; the
Dockerfile installs them with ``--no-index --no-deps``. The serving set is the group's locked
closure without catboost's plotting helpers (:data:`SERVING_UNUSED_DEPENDENCIES`), and the
image deletes the parts of installed packages the service never loads (:data:`SERVING_PRUNE`).
The model itself is not baked in: the service reads it from the snapshot mounted at /snapshots;
the image is tagged and labelled with the model version it was built and smoke-tested for, and
the code commit.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.markers import default_environment
from packaging.requirements import Requirement

from pipelines.model_bundle import MODEL_FILE, ModelLoadError, load_metadata
from pipelines.settings import get_settings
from pipelines.snapshot import SnapshotError, read_current
from scoreloop.release.engine import LOCAL_BASE_IMAGE, REPO_ROOT, SETUP_SCRIPT, container_engine
from scoreloop.release.errors import ReleaseError

DOCKERFILE = REPO_ROOT / "serving" / "Dockerfile"
#: Run by the Dockerfile's build stage with the image's python3 (stdlib only): cuts CUDA kernels.
GPU_CODE_TOOL = Path(__file__).with_name("gpu_code.py")
DEFAULT_REPOSITORY = "localhost/scoreloop-serving"
SLIM_BASE = "python:3.11-slim-bookworm"
REVISION_LABEL = "org.opencontainers.image.revision"
MODEL_VERSION_LABEL = "ai.scoreloop.model.version"
#: What the service loads: importing these pulls in every pipelines module the image needs.
SERVING_ENTRY_MODULES = ("serving.main", "serving.__main__")
_LIST_PIPELINES = (
    "import importlib, sys\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "names = [m for m in sys.modules if m == 'pipelines' or m.startswith('pipelines.')]\n"
    "print(' '.join(sorted(names)))"
)


def serving_pipelines_modules() -> list[str]:
    """The pipelines modules serving/ imports (directly or through each other), found by importing
    the service in a fresh interpreter: the image holds only these, and the list follows the code.
    tests/release/test_image.py proves it is enough and that training code stays out."""
    out = subprocess.run(
        [sys.executable, "-c", _LIST_PIPELINES, *SERVING_ENTRY_MODULES],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    return ["__init__" if m == "pipelines" else m.split(".", 1)[1] for m in out.stdout.split()]


SPEC_FILE = Path("data") / "acs_employment" / "spec.yaml"

Variant = Literal["serving", "all"]


@dataclass(frozen=True)
class BuiltImage:
    """An image built for one model version at one code commit."""

    image: str
    image_id: str
    model_version: str
    commit: str
    base: str
    variant: Variant
    size_mb: float
    seconds: float
    labels: dict[str, str] = field(default_factory=dict)


def default_build_dir() -> Path:
    """``SCORELOOP_BUILD_DIR``, else ``<state root>/build`` (wheels and contexts, reusable)."""
    override = os.environ.get("SCORELOOP_BUILD_DIR")
    return Path(override) if override else get_settings().state_root / "build"


def _uv() -> str:
    bundled = REPO_ROOT / ".tools" / "uv" / "bin" / "uv"
    found = str(bundled) if bundled.exists() else shutil.which("uv")
    if not found:
        raise ReleaseError("uv not found (.tools/uv/bin/uv or PATH): run `make setup`")
    return found


def _pip() -> list[str]:
    bundled = REPO_ROOT / ".tools" / "uv" / "bin" / "pip"
    if bundled.exists():
        return [str(bundled)]
    found = shutil.which("pip3") or shutil.which("pip")
    if not found:
        raise ReleaseError("pip not found (.tools/uv/bin/pip or PATH): run `make setup`")
    return [found]


#: Dependencies the lock declares that the service never imports, left out of the serving image.
#: catboost's metadata requires its plotting helpers, but it imports them only inside plotting and
#: widget functions (catboost/plot_helpers.py, core.py): predicting needs numpy, pandas (imported
#: by _catboost.so at import), scipy.sparse and six. Their own dependencies (pillow, fonttools,
#: contourpy, kiwisolver, narwhals, ...) go with them unless something the service does import
#: needs them too. tests/release/test_image.py runs the real service on the rest (readyz, lookup,
#: /predict) and checks the image holds exactly this closure.
SERVING_UNUSED_DEPENDENCIES: dict[str, frozenset[str]] = {
    "catboost": frozenset({"graphviz", "matplotlib", "plotly"}),
}
LOCK_FILE = REPO_ROOT / "uv.lock"
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: Files of installed distributions the service never loads, deleted from the serving image's
#: site-packages (globs; serving/Dockerfile reads them from prune.txt). Each was checked against
#: what the running service maps (/proc/self/maps) and imports; tests/release/test_build.py
#: checks every glob still matches the locked wheels, test_image.py that the service runs.
SERVING_PRUNE: tuple[tuple[str, str], ...] = (
    *(
        (f"scipy/{name}", "catboost imports scipy.sparse alone (its sparse-input checks)")
        for name in (
            "cluster",
            "constants",
            "datasets",
            "differentiate",
            "fft",
            "fftpack",
            "integrate",
            "interpolate",
            "io",
            "linalg",
            "misc",
            "ndimage",
            "odr",
            "optimize",
            "signal",
            "spatial",
            "special",
            "stats",
            "sparse/linalg",
            "sparse/csgraph",
        )
    ),
    ("scipy.libs", "scipy's OpenBLAS: loaded by scipy.linalg only"),
    ("pyarrow/libarrow_flight.so.*", "Arrow Flight (RPC): the service reads IPC files"),
    ("pyarrow/libarrow_python_flight.so*", "Arrow Flight"),
    ("pyarrow/_flight.*.so", "Arrow Flight"),
    ("pyarrow/flight.py", "Arrow Flight"),
    ("pyarrow/libarrow_s3.so.*", "S3 filesystem: pyarrow.fs imports it optionally"),
    ("pyarrow/_s3fs.*.so", "S3 filesystem (optional in pyarrow.fs)"),
    ("pyarrow/_gcsfs.*.so", "GCS filesystem (optional in pyarrow.fs)"),
    ("pyarrow/_azurefs.*.so", "Azure filesystem (optional in pyarrow.fs)"),
    ("pyarrow/_hdfs.*.so", "HDFS filesystem (optional in pyarrow.fs)"),
    ("pyarrow/_orc.*.so", "ORC format"),
    ("pyarrow/_dataset_orc.*.so", "ORC format"),
    ("pyarrow/_pyarrow_cpp_tests.*.so", "pyarrow's C++ test hooks"),
    ("pyarrow/include", "C++ headers (building extensions)"),
    ("pyarrow/libarrow_python.so", "link-time copy (the loader uses libarrow_python.so.N)"),
    ("pyarrow/libarrow_python.so.*.*.*", "link-time copy"),
    ("pyarrow/libarrow_python_parquet_encryption.so", "link-time copy"),
    ("pyarrow/libarrow_python_parquet_encryption.so.*.*.*", "link-time copy"),
)


def serving_closure(lock_file: Path = LOCK_FILE) -> set[str]:
    """Names of the packages the serving group needs, walked through uv.lock (extras included),
    minus the edges in :data:`SERVING_UNUSED_DEPENDENCIES`."""
    lock = tomllib.loads(lock_file.read_text())
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(_normalise(package["name"]), []).append(package)
    project = packages["scoreloop"][0]
    roots = project.get("dev-dependencies", {}).get("serving")
    if not roots:
        raise ReleaseError(f"{lock_file} has no `serving` dependency group: run `uv lock`")
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [
        (_normalise(dep["name"]), tuple(dep.get("extra", ()))) for dep in roots
    ]
    while todo:
        name, extras = todo.pop()
        key = name if not extras else f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        skip = SERVING_UNUSED_DEPENDENCIES.get(name, frozenset())
        for package in packages.get(name, []):
            deps = list(package.get("dependencies", []))
            optional = package.get("optional-dependencies", {})
            for extra in extras:
                deps += optional.get(extra, [])
            for dep in deps:
                dep_name = _normalise(dep["name"])
                if dep_name not in skip:
                    todo.append((dep_name, tuple(dep.get("extra", ()))))
    return {key.split("[", 1)[0] for key in seen}


def export_requirements(variant: Variant = "serving") -> str:
    """Pinned requirements from uv.lock: the ``serving`` group (without the dependencies in
    :data:`SERVING_UNUSED_DEPENDENCIES`), or every runtime dependency. The list is complete, so
    the image installs it with ``--no-deps``."""
    selection = ["--only-group", "serving"] if variant == "serving" else ["--no-dev"]
    result = subprocess.run(
        [
            _uv(),
            "export",
            "--frozen",
            "--no-emit-project",
            "--no-hashes",
            "--no-annotate",
            "--no-header",
            "--quiet",
            *selection,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ReleaseError(
            f"`uv export` of the {variant} dependencies failed: {result.stderr.strip()}\n"
            "fix: `uv lock` after editing pyproject.toml, then commit uv.lock"
        )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if variant == "serving":
        keep = serving_closure()
        lines = [line for line in lines if _normalise(_requirement_name(line)) in keep]
    return "\n".join(lines) + "\n"


def _requirement_name(line: str) -> str:
    match = _NAME.match(line.strip())
    if not match:
        raise ReleaseError(f"unexpected line in `uv export` output: {line!r}")
    return match.group(1)


#: The image's Python is a 3.11 (bookworm's python3 is 3.11.2, python:3.11-slim a later 3.11.x),
#: which need not be the host's: see :func:`wheel_requirements`.
IMAGE_PYTHON_MINOR = "3.11"
_IMAGE_PATCH_RELEASES = range(0, 20)


def wheel_requirements(requirements: str) -> str:
    """The requirements to build wheels for: every line whose marker holds for some Python
    3.11.x on this platform, markers removed. pip evaluates markers against the interpreter that
    runs it, and the host's 3.11.7 skips ``async-timeout ; python_full_version < '3.11.3'``,
    which the image's 3.11.2 then cannot install (``--no-index``). The image's own pip picks from
    the wheels with the markers of requirements.txt, so an extra wheel costs nothing."""
    default = {key: str(value) for key, value in default_environment().items()}
    kept = []
    for line in requirements.splitlines():
        if not line.strip():
            continue
        requirement = Requirement(line)
        marker = requirement.marker
        versions = (f"{IMAGE_PYTHON_MINOR}.{patch}" for patch in _IMAGE_PATCH_RELEASES)
        if marker is None or any(
            marker.evaluate(
                {**default, "python_version": IMAGE_PYTHON_MINOR, "python_full_version": version}
            )
            for version in versions
        ):
            kept.append(line.split(";", 1)[0].strip())
    return "\n".join(kept) + "\n"


def build_wheels(requirements: str, build_dir: Path) -> Path:
    """Wheels for ``requirements`` (see :func:`wheel_requirements`) in a folder keyed by their
    hash (built once, then reused)."""
    wanted = wheel_requirements(requirements)
    key = hashlib.sha256(wanted.encode()).hexdigest()[:16]
    wheels = build_dir / "wheels" / key
    stamp = wheels / ".complete"
    if stamp.exists():
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    requirements_file = wheels / "requirements.txt"
    requirements_file.write_text(wanted)
    result = subprocess.run(
        [
            *_pip(),
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(requirements_file),
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ReleaseError(
            f"building wheels into {wheels} failed:\n{result.stderr.strip()[-2000:]}\n"
            "fix: check the package index is reachable (pip config) and retry"
        )
    stamp.write_text(key)
    return wheels


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def prepare_context(
    context: Path, variant: Variant = "serving", build_dir: Path | None = None
) -> Path:
    """Assemble the build context: exactly the files serving/Dockerfile copies.

    Returns ``context`` (emptied first), holding requirements.txt, prune.txt (files the serving
    image deletes after installing; empty for ``all``), gpu_code.py (the build stage's CUDA
    kernel cutter, :mod:`scoreloop.release.gpu_code`), wheels/, serving/,
    pipelines/<the modules serving imports> and the bundled dataset spec.
    """
    requirements = export_requirements(variant)
    wheels = build_wheels(requirements, build_dir or default_build_dir())
    if context.exists():
        shutil.rmtree(context)
    (context / "wheels").mkdir(parents=True)
    (context / "requirements.txt").write_text(requirements)
    prune = (
        [f"{pattern}  # {why}" for pattern, why in SERVING_PRUNE] if variant == "serving" else []
    )
    (context / "prune.txt").write_text("".join(f"{line}\n" for line in prune))
    shutil.copy2(GPU_CODE_TOOL, context / GPU_CODE_TOOL.name)
    for wheel in sorted(wheels.glob("*.whl")):
        _link_or_copy(wheel, context / "wheels" / wheel.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "Dockerfile*")
    shutil.copytree(REPO_ROOT / "serving", context / "serving", ignore=ignore)
    (context / "pipelines").mkdir()
    for module in serving_pipelines_modules():
        shutil.copy2(REPO_ROOT / "pipelines" / f"{module}.py", context / "pipelines")
    (context / SPEC_FILE).parent.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / SPEC_FILE, context / SPEC_FILE)
    return context


def code_commit() -> str:
    """The checkout's HEAD commit (``SCORELOOP_CODE_COMMIT`` wins, e.g. GITHUB_SHA in CI)."""
    override = os.environ.get("SCORELOOP_CODE_COMMIT")
    if override:
        return override
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ReleaseError(
            f"cannot read the code commit in {REPO_ROOT}: {result.stderr.strip()}; "
            "set SCORELOOP_CODE_COMMIT"
        )
    return result.stdout.strip()


def check_bundle(bundle_dir: Path, snapshot_dir: Path | None = None) -> str:
    """The bundle's model version, after checking its artifact (and the snapshot's version)."""
    if not (bundle_dir / MODEL_FILE).is_file():
        raise ReleaseError(
            f"model artifact {bundle_dir / MODEL_FILE} is missing: fetch the version's artifacts "
            "(`dvc pull` in the registry repo) before building"
        )
    try:
        version = load_metadata(bundle_dir).version
    except ModelLoadError as exc:
        raise ReleaseError(f"model bundle {bundle_dir} is unreadable: {exc}") from exc
    if snapshot_dir is not None:
        try:
            manifest = read_current(snapshot_dir)
        except SnapshotError as exc:
            raise ReleaseError(f"snapshot dir {snapshot_dir} is unreadable: {exc}") from exc
        if manifest is None:
            raise ReleaseError(
                f"no snapshot published in {snapshot_dir} (no CURRENT): rescore with {version} "
                "(`scoreloop rescore`) first"
            )
        if manifest.model_version != version:
            raise ReleaseError(
                f"snapshot {manifest.snapshot_id} in {snapshot_dir} serves "
                f"{manifest.model_version}, not the bundle's {version}: rescore with {version} "
                "first, or build from the bundle the snapshot was made with"
            )
    return str(version)


def resolve_base(base: str | None = None) -> str:
    """``base``, else ``SCORELOOP_IMAGE_BASE``, else the local debootstrap base if built, else
    python:3.11-slim-bookworm."""
    if base:
        return base
    override = os.environ.get("SCORELOOP_IMAGE_BASE")
    if override:
        return override
    return LOCAL_BASE_IMAGE if container_engine().image_exists(LOCAL_BASE_IMAGE) else SLIM_BASE


def build_image(
    bundle_dir: Path,
    snapshot_dir: Path | None = None,
    *,
    commit: str | None = None,
    base: str | None = None,
    repository: str = DEFAULT_REPOSITORY,
    variant: Variant = "serving",
    build_dir: Path | None = None,
) -> BuiltImage:
    """Build the serving image for the model version in ``bundle_dir``.

    Args:
        bundle_dir: the model version's bundle (model.cbm + metadata.json); its version names
            the image.
        snapshot_dir: the snapshots folder the release will serve; when given, its CURRENT
            snapshot must serve the same version.
        commit: code commit for the label and tag (default: HEAD, or SCORELOOP_CODE_COMMIT).
        base: base image (default: see :func:`resolve_base`).
        repository: image name without tag; the tag is ``<model version>-<commit[:12]>``.
        variant: ``serving`` (the serving group) or ``all`` (every runtime dependency, for the
            size comparison in benchmarks/deploy.py).
        build_dir: where wheels and the context are kept (default :func:`default_build_dir`).

    Raises:
        ReleaseError: artifact missing, snapshot of another version, base image missing, or
            the build failed (with the engine's last lines).
    """
    started = time.perf_counter()
    model_version = check_bundle(bundle_dir, snapshot_dir)
    commit = commit or code_commit()
    engine = container_engine()
    base = resolve_base(base)
    if base == LOCAL_BASE_IMAGE and not engine.image_exists(base):
        raise ReleaseError(
            f"base image {base} is missing: run `sudo {SETUP_SCRIPT.relative_to(REPO_ROOT)}` "
            "(debootstrap from the machine's apt mirror), or pass base=python:3.11-slim-bookworm"
        )
    build_dir = build_dir or default_build_dir()
    build_dir.mkdir(parents=True, exist_ok=True)
    # A context of its own per build: two builds at once (CI jobs, engineers) never share one.
    context = Path(tempfile.mkdtemp(prefix=f"context-{variant}-", dir=build_dir))
    prepare_context(context, variant, build_dir)
    suffix = "" if variant == "serving" else f"-{variant}"
    image = f"{repository}{suffix}:{model_version}-{commit[:12]}"
    args = [
        "build",
        "--file",
        str(DOCKERFILE),
        "--build-arg",
        f"BASE={base}",
        "--build-arg",
        f"REVISION={commit}",
        "--build-arg",
        f"MODEL_VERSION={model_version}",
        # Also as --label: buildah 1.28 reuses a cached LABEL layer when only the build-arg
        # changed, so the Dockerfile's LABEL alone can carry a stale commit.
        "--label",
        f"{REVISION_LABEL}={commit}",
        "--label",
        f"{MODEL_VERSION_LABEL}={model_version}",
        "--tag",
        image,
    ]
    if engine.name == "podman":
        # OCI-format images drop HEALTHCHECK: build the docker format. apt in the build needs
        # the host network (no bridge DNS for RUN here).
        args += ["--format", "docker", "--layers", "--network", "host"]
    try:
        engine.run(
            [*args, str(context)],
            what=f"building {image} from {context}",
            fix="read the build output above; a missing base needs deploy/container/setup.sh",
            timeout=1800,
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    info = engine.inspect_image(image)
    labels = dict(info.get("Config", {}).get("Labels") or info.get("Labels") or {})
    return BuiltImage(
        image=image,
        image_id=str(info["Id"]),
        model_version=model_version,
        commit=commit,
        base=base,
        variant=variant,
        size_mb=round(float(info["Size"]) / 1e6, 1),
        seconds=round(time.perf_counter() - started, 2),
        labels=labels,
    )
