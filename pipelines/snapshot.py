"""Serving snapshots: the latest score of every entity plus the model that made them.

A snapshot is a folder under the snapshots directory, published once and never changed::

    <snapshots_dir>/<snapshot_id>/
        scores.arrow     Arrow IPC file (uncompressed, one record batch), sorted by entity_id,
                         one row per entity, the scores-table columns (the low-cardinality
                         string columns dictionary-encoded)
        model.cbm        copy of the model bundle that produced the scores
        metadata.json
        card.md          (when the bundle has one)
        holdout.json     (when the bundle has one) the model's holdout evaluation
        spec.yaml        the dataset spec the scores and the model follow
        features.arrow   (when published with features) the validated feature values each score
                         was made from, row for row beside scores.arrow (same order): what
                         ``GET /explain/{entity_id}`` explains
        manifest.json    SnapshotManifest (row count, sha256 of scores.arrow and of every other
                         file, id dtype, columns, top_k: the reasons per row batch scoring wrote,
                         which /predict returns)
    <snapshots_dir>/CURRENT   the snapshot id being served (swapped with os.replace)

Every file of a published snapshot is written read-only (0444) and its sha256 is in the manifest;
a load verifies them. Readers (the lookup service) read ``scores.arrow`` into anonymous memory
and verify the checksum of exactly the bytes they serve: a memory-mapped file truncated in place
kills its reader with SIGBUS (and root ignores the read-only bit), while a copy in memory keeps
answering whatever happens to the files afterwards.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import stat
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from pydantic import BaseModel, ConfigDict

from pipelines.errors import ScoreloopError
from pipelines.explain import DEFAULT_TOP_K
from pipelines.features import FeatureMismatchError
from pipelines.model_bundle import (
    CARD_FILE,
    HOLDOUT_FILE,
    METADATA_FILE,
    MODEL_FILE,
    HoldoutEvaluation,
    ModelBundle,
    ModelLoadError,
    load_bundle,
    load_holdout,
    load_metadata,
    read_json_model,
)
from pipelines.score import ScoringError, check_bundle
from pipelines.spec import POLARS_DTYPES, DatasetSpec, DType, SpecError, load_spec

SCORES_FILE = "scores.arrow"
FEATURES_FILE = "features.arrow"
MANIFEST_FILE = "manifest.json"
SPEC_FILE = "spec.yaml"
CURRENT_FILE = "CURRENT"
FORMAT_VERSION = 1

REASON_DTYPE = pl.List(
    pl.Struct({"feature": pl.String, "value": pl.String, "contribution": pl.Float64})
)


def scores_schema(id_dtype: DType) -> dict[str, pl.DataType]:
    """The scores-table columns, in order, with the entity id typed as the spec's id column."""
    return {
        "entity_id": POLARS_DTYPES[id_dtype],
        "batch_id": pl.String(),
        "score": pl.Float64(),
        "decision": pl.Boolean(),
        "threshold": pl.Float64(),
        "model_name": pl.String(),
        "model_version": pl.String(),
        "reasons": REASON_DTYPE,
        "expected_value": pl.Float64(),
        "scored_at": pl.Datetime("us", "UTC"),
        "data_version": pl.String(),
    }


#: Few distinct values per snapshot: stored dictionary-encoded (smaller file, cheaper lookups).
DICTIONARY_COLUMNS = ("batch_id", "model_name", "model_version", "data_version")


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest()).combine_chunks()
    for name in DICTIONARY_COLUMNS:
        i = table.schema.get_field_index(name)
        encoded = pc.dictionary_encode(table.column(name)).combine_chunks()
        table = table.set_column(i, pa.field(name, encoded.type), encoded)
    return table


def arrow_scores_schema(id_dtype: DType) -> pa.Schema:
    """The Arrow schema of ``scores.arrow`` for a given id dtype (what readers check against)."""
    return _to_arrow(pl.DataFrame(schema=scores_schema(id_dtype))).schema


class SnapshotError(ScoreloopError, RuntimeError):
    """A snapshot cannot be published or loaded; the message says which and why."""


class SnapshotManifest(BaseModel):
    """What a snapshot holds; written last, next to the files it describes."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    snapshot_id: str
    model_name: str
    model_version: str
    row_count: int
    sha256: str
    created_at: datetime
    id_dtype: DType
    columns: list[str]
    spec_name: str = ""
    #: Reasons per row (``scoring.top_k``): the scores have them, ``POST /predict`` returns as
    #: many. Snapshots published before it was recorded carry the default.
    top_k: int = DEFAULT_TOP_K
    format_version: int = FORMAT_VERSION
    #: sha256 of every other file (model, metadata, spec, card, holdout), by file name.
    #: Empty in snapshots published before it existed: only scores.arrow is verified then.
    files: dict[str, str] = {}


@dataclass(frozen=True)
class LoadedSnapshot:
    """A verified snapshot held in memory: its scores, spec, model and model card.

    Nothing here reads the snapshot folder after the load, so a change to its files cannot
    change (or crash) what is served.
    """

    manifest: SnapshotManifest
    directory: Path
    scores: pa.Table
    spec: DatasetSpec
    bundle: ModelBundle
    card: str | None = None
    #: The model's holdout evaluation (None for a bundle without holdout.json).
    holdout: HoldoutEvaluation | None = None
    #: ``entity_id``, ``batch_id`` and the spec's features of every scores row, in the same
    #: order; None for a snapshot published without them.
    features: pa.Table | None = None


def snapshot_path(snapshots_dir: Path, snapshot_id: str) -> Path:
    """Folder of one snapshot."""
    return Path(snapshots_dir) / snapshot_id


def _normalise(scores: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    schema = scores_schema(spec.id.dtype)
    missing = [c for c in schema if c not in scores.columns]
    if missing:
        raise SnapshotError(
            f"scores frame lacks scores-table column(s) {missing}; it has {scores.columns}"
        )
    try:
        frame = scores.select(
            pl.col(name).cast(dtype, strict=True) for name, dtype in schema.items()
        )
    except pl.exceptions.PolarsError as exc:
        raise SnapshotError(f"scores frame does not fit the scores-table schema: {exc}") from exc
    if frame.height == 0:
        raise SnapshotError("scores frame is empty: nothing to serve")
    if frame["entity_id"].null_count():
        raise SnapshotError("scores frame has null entity_id values")
    versions = frame["model_version"].unique().to_list()
    if len(versions) != 1 or versions[0] is None:
        raise SnapshotError(
            f"scores frame has {len(versions)} model versions {sorted(map(str, versions))}: "
            "a snapshot serves exactly one model version (rescore the population first)"
        )
    names = frame["model_name"].unique().to_list()
    if len(names) != 1 or names[0] is None:
        raise SnapshotError(f"scores frame has model names {names}: expected exactly one")
    duplicated = frame.filter(pl.col("entity_id").is_duplicated())["entity_id"].unique()
    if duplicated.len():
        raise SnapshotError(
            f"scores frame has {duplicated.len()} duplicate entity id(s), e.g. "
            f"{duplicated.head(5).to_list()}: keep one row (the latest score) per entity"
        )
    return frame.sort("entity_id")


def features_schema(spec: DatasetSpec) -> dict[str, pl.DataType]:
    """The columns of ``features.arrow``: the entity id, its batch and the spec's features."""
    record = spec.record_schema
    return {
        "entity_id": POLARS_DTYPES[spec.id.dtype],
        "batch_id": pl.String(),
        **{name: record[name] for name in spec.feature_names},
    }


def _align_features(features: pl.DataFrame, frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """``features`` in the order of the (sorted) scores ``frame``, one row per scores row."""
    schema = features_schema(spec)
    missing = [c for c in schema if c not in features.columns]
    if missing:
        raise SnapshotError(f"features frame lacks column(s) {missing}; it has {features.columns}")
    try:
        typed = features.select(
            pl.col(name).cast(dtype, strict=True) for name, dtype in schema.items()
        ).unique(subset=["entity_id", "batch_id"], keep="last", maintain_order=True)
    except pl.exceptions.PolarsError as exc:
        raise SnapshotError(f"features frame does not fit the spec's types: {exc}") from exc
    aligned = frame.select("entity_id", "batch_id").join(
        typed.with_columns(pl.lit(True).alias("__found")),
        on=["entity_id", "batch_id"],
        how="left",
        maintain_order="left",
    )
    lacking = aligned.filter(pl.col("__found").is_null())
    if lacking.height:
        raise SnapshotError(
            f"features frame has no row for {lacking.height} scored entity/batch pair(s), "
            f"e.g. entity ids {lacking['entity_id'].head(5).to_list()}"
        )
    return aligned.drop("__found")


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_scores(frame: pl.DataFrame, path: Path, *, dictionary: bool = True) -> None:
    table = (
        _to_arrow(frame)
        if dictionary
        else frame.to_arrow(compat_level=pl.CompatLevel.oldest()).combine_chunks()
    )
    # One record batch, no compression: readers memory-map it and binary-search the id buffer.
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))
    _fsync_file(path)


def _snapshot_dirs(snapshots_dir: Path) -> list[Path]:
    if not snapshots_dir.is_dir():
        return []
    return sorted(
        p
        for p in snapshots_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).exists()
    )


def _prune(snapshots_dir: Path, keep: int, current: str) -> None:
    dirs = _snapshot_dirs(snapshots_dir)
    for old in dirs[: max(len(dirs) - keep, 0)]:
        if old.name != current:
            # Readers hold their copy in memory: removing the files costs them nothing.
            shutil.rmtree(old, ignore_errors=True)


#: Files of a published snapshot: readable by everyone, writable by nobody.
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _seal(directory: Path) -> dict[str, str]:
    """Make every file in ``directory`` read-only; sha256 of each except scores and manifest."""
    digests: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        path.chmod(READ_ONLY)
        if path.name not in (SCORES_FILE, MANIFEST_FILE):
            digests[path.name] = _sha256(path)
    return digests


def _write_current(snapshots_dir: Path, snapshot_id: str) -> None:
    tmp = snapshots_dir / f".{CURRENT_FILE}.{uuid.uuid4().hex}"
    tmp.write_text(snapshot_id + "\n")
    _fsync_file(tmp)
    os.replace(tmp, snapshots_dir / CURRENT_FILE)


def publish_snapshot(
    scores: pl.DataFrame,
    bundle_dir: Path,
    spec_path: Path,
    snapshots_dir: Path,
    *,
    keep: int = 3,
    top_k: int = DEFAULT_TOP_K,
    features: pl.DataFrame | None = None,
) -> SnapshotManifest:
    """Write a new snapshot, point CURRENT at it atomically, and prune to ``keep`` snapshots.

    Args:
        scores: rows with the scores-table columns (extra columns are dropped); exactly one
            model version and one row per entity.
        bundle_dir: the model directory (model.cbm + metadata.json) that produced ``scores``.
        spec_path: the dataset spec file the scores and the model follow.
        snapshots_dir: where snapshots and the CURRENT pointer live.
        keep: how many snapshots to keep on disk (the current one is never pruned).
        top_k: the reasons per row the scores were made with (``scoring.top_k``), recorded in
            the manifest so on-demand scoring returns as many.
        features: the validated rows the scores were made from (``entity_id``, ``batch_id`` and
            the spec's features, as :func:`features_schema`); written as ``features.arrow`` in
            the scores' order, so the service can explain a served score. Every scores row
            needs its row here.

    Raises:
        SnapshotError: the frame breaks the contract, or the bundle or spec cannot be read or
            do not match it. Nothing visible to readers changes in that case.
    """
    if keep < 1:
        raise SnapshotError(f"keep must be >= 1, got {keep}")
    if top_k < 1:
        raise SnapshotError(f"top_k must be >= 1, got {top_k}")
    bundle_dir = Path(bundle_dir)
    spec_path = Path(spec_path)
    snapshots_dir = Path(snapshots_dir)
    try:
        spec = load_spec(spec_path)
        metadata = load_metadata(bundle_dir)
    except (SpecError, ModelLoadError) as exc:
        raise SnapshotError(f"cannot publish a snapshot: {exc}") from exc
    if not (bundle_dir / MODEL_FILE).exists():
        raise SnapshotError(
            f"cannot publish a snapshot: model file {bundle_dir / MODEL_FILE} missing"
        )
    frame = _normalise(scores, spec)
    aligned = _align_features(features, frame, spec) if features is not None else None
    model_version = str(frame["model_version"][0])
    model_name = str(frame["model_name"][0])
    if metadata.version is not None and metadata.version != model_version:
        raise SnapshotError(
            f"scores were made by model version {model_version!r} but bundle {bundle_dir} is "
            f"version {metadata.version!r}"
        )
    if metadata.name != model_name:
        raise SnapshotError(
            f"scores name model {model_name!r} but bundle {bundle_dir} is model {metadata.name!r}"
        )

    created_at = datetime.now(UTC)
    safe_version = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in model_version)
    snapshot_id = f"{created_at.strftime('%Y%m%dT%H%M%S%fZ')}-{safe_version}-{uuid.uuid4().hex[:6]}"
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    staging = snapshots_dir / f".staging-{snapshot_id}"
    staging.mkdir()
    try:
        _write_scores(frame, staging / SCORES_FILE)
        if aligned is not None:
            _write_scores(aligned, staging / FEATURES_FILE, dictionary=False)
        for name in (MODEL_FILE, METADATA_FILE, CARD_FILE, HOLDOUT_FILE):
            if (bundle_dir / name).exists():
                shutil.copyfile(bundle_dir / name, staging / name)
        shutil.copyfile(spec_path, staging / SPEC_FILE)
        files = _seal(staging)
        manifest = SnapshotManifest(
            snapshot_id=snapshot_id,
            model_name=model_name,
            model_version=model_version,
            row_count=frame.height,
            sha256=_sha256(staging / SCORES_FILE),
            created_at=created_at,
            id_dtype=spec.id.dtype,
            columns=frame.columns,
            spec_name=spec.name,
            top_k=top_k,
            files=files,
        )
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
        _fsync_file(staging / MANIFEST_FILE)
        (staging / MANIFEST_FILE).chmod(READ_ONLY)
        os.replace(staging, snapshot_path(snapshots_dir, snapshot_id))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_current(snapshots_dir, snapshot_id)
    _prune(snapshots_dir, keep, snapshot_id)
    return manifest


def read_manifest(directory: Path) -> SnapshotManifest:
    """Read one snapshot's manifest; a missing or corrupt one raises SnapshotError."""
    return read_json_model(
        Path(directory) / MANIFEST_FILE, SnapshotManifest, SnapshotError, "snapshot manifest"
    )


def current_id(snapshots_dir: Path) -> str | None:
    """The snapshot id CURRENT points at, or None when nothing was published."""
    try:
        text = (Path(snapshots_dir) / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        raise SnapshotError(f"{Path(snapshots_dir) / CURRENT_FILE} is empty")
    return text


def read_current(snapshots_dir: Path) -> SnapshotManifest | None:
    """Manifest of the snapshot being served, or None when no snapshot was published yet."""
    snapshot_id = current_id(snapshots_dir)
    if snapshot_id is None:
        return None
    manifest = read_manifest(snapshot_path(snapshots_dir, snapshot_id))
    if manifest.snapshot_id != snapshot_id:
        raise SnapshotError(
            f"CURRENT points at {snapshot_id!r} but its manifest says {manifest.snapshot_id!r}"
        )
    return manifest


def _check_sorted_unique(ids: pa.ChunkedArray | pa.Array, where: Path) -> None:
    column = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if pa.types.is_integer(column.type):
        values = np.frombuffer(
            column.buffers()[1], dtype=np.int64, count=column.offset + len(column)
        )[column.offset :]
        if len(values) > 1 and not bool(np.all(values[1:] > values[:-1])):
            raise SnapshotError(f"{where}: entity_id is not strictly increasing (sorted, unique)")


#: Read in pieces; each one is hashed by a helper thread while the next is read.
READ_CHUNK = 64 * 2**20


def read_into_memory(path: Path, *, digest: bool = True) -> tuple[memoryview, str | None]:
    """The whole file copied into private anonymous memory, and the sha256 of those bytes.

    Anonymous memory, not a mapping of the file: nothing another process does to the file
    afterwards (truncate, overwrite, delete) can reach it (a truncated mapping would SIGBUS).
    Page-aligned, and released when the last view of it goes. Hashing a piece overlaps reading
    the next (hashlib releases the GIL), so the load costs about the longer of the two. A file
    that changes size while it is read is refused.
    """
    sha = hashlib.sha256() if digest else None
    try:
        with (
            path.open("rb", buffering=0) as handle,
            ThreadPoolExecutor(1, thread_name_prefix="snapshot-sha256") as hasher,
        ):
            size = os.fstat(handle.fileno()).st_size
            memory = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            # No MADV_HUGEPAGE: with THP defrag on madvise it stalled the fill 2-3x here.
            view = memoryview(memory)
            done = 0
            pending: list[Future[None]] = []
            while done < size:
                n = handle.readinto(view[done : min(done + READ_CHUNK, size)])
                if not n:
                    break
                if sha is not None:  # one worker: the pieces are hashed in order
                    pending.append(hasher.submit(sha.update, view[done : done + n]))
                done += n
            for future in pending:
                future.result()
            del pending
            view.release()
            extra = handle.read(1)
    except OSError as exc:
        raise SnapshotError(f"snapshot scores {path} are unreadable: {exc}") from exc
    if done != size or extra:
        memory.close()
        raise SnapshotError(f"snapshot scores {path} changed size while being read")
    return memoryview(memory)[:size], sha.hexdigest() if sha is not None else None


def _table_from_memory(memory: memoryview, where: Path) -> pa.Table:
    try:
        return ipc.open_file(pa.BufferReader(pa.py_buffer(memory))).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotError(f"snapshot scores {where} are unreadable: {exc}") from exc


def open_scores(path: Path) -> pa.Table:
    """Read an Arrow IPC scores file into memory (see :func:`read_into_memory`)."""
    return _table_from_memory(read_into_memory(Path(path), digest=False)[0], path)


def load_snapshot(
    snapshots_dir: Path,
    manifest: SnapshotManifest,
    *,
    expected_id_dtype: DType | None = None,
    verify_checksum: bool = True,
) -> LoadedSnapshot:
    """Verify and open one snapshot: checksum, schema, sort order, spec and model.

    Raises:
        SnapshotError: corrupt (checksum, unreadable file) or incompatible (schema, id type,
            model features) snapshot.
    """
    directory = snapshot_path(snapshots_dir, manifest.snapshot_id)
    scores_path = directory / SCORES_FILE
    if expected_id_dtype is not None and manifest.id_dtype != expected_id_dtype:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id} has id dtype {manifest.id_dtype!r}; this service "
            f"serves {expected_id_dtype!r} ids (restart it to change the id type)"
        )
    # The checksum is taken of the bytes in memory, the ones that will be served.
    memory, digest = read_into_memory(scores_path, digest=verify_checksum)
    if digest is not None:
        _verify(manifest, scores_path, digest, manifest.sha256)
        for name, expected_digest in manifest.files.items():
            try:
                digest = _sha256(directory / name)
            except OSError as exc:
                raise SnapshotError(
                    f"snapshot {manifest.snapshot_id}: {directory / name} is unreadable: {exc}"
                ) from exc
            _verify(manifest, directory / name, digest, expected_digest)
    try:
        spec = load_spec(directory / SPEC_FILE)
    except (SpecError, OSError) as exc:
        raise SnapshotError(f"snapshot {manifest.snapshot_id}: bad spec: {exc}") from exc
    if spec.id.dtype != manifest.id_dtype:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: spec id dtype {spec.id.dtype!r} != manifest "
            f"{manifest.id_dtype!r}"
        )
    table = _table_from_memory(memory, scores_path)
    expected = arrow_scores_schema(manifest.id_dtype)
    if not table.schema.equals(expected):
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: scores schema mismatch:\n{table.schema}\n"
            f"expected:\n{expected}"
        )
    if table.num_rows != manifest.row_count:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: {table.num_rows} rows, manifest says "
            f"{manifest.row_count}"
        )
    _check_sorted_unique(table.column("entity_id"), scores_path)
    try:
        bundle = load_bundle(directory)
    except ModelLoadError as exc:
        raise SnapshotError(f"snapshot {manifest.snapshot_id}: {exc}") from exc
    try:
        check_bundle(bundle, spec)
    except (FeatureMismatchError, ScoringError) as exc:
        raise SnapshotError(f"snapshot {manifest.snapshot_id}: {exc}") from exc
    card_path = directory / CARD_FILE
    try:
        card = card_path.read_text() if card_path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: unreadable {card_path}: {exc}"
        ) from exc
    try:
        holdout = load_holdout(directory)
    except ModelLoadError as exc:
        raise SnapshotError(f"snapshot {manifest.snapshot_id}: {exc}") from exc
    features = (
        _load_features(manifest, directory, spec, table)
        if FEATURES_FILE in manifest.files
        else None
    )
    return LoadedSnapshot(
        manifest=manifest,
        directory=directory,
        scores=table,
        spec=spec,
        bundle=bundle,
        card=card,
        holdout=holdout,
        features=features,
    )


def _load_features(
    manifest: SnapshotManifest, directory: Path, spec: DatasetSpec, scores: pa.Table
) -> pa.Table:
    """``features.arrow`` in memory, checked against the spec and row for row against scores
    (its sha256 was verified with the other files)."""
    path = directory / FEATURES_FILE
    table = _table_from_memory(read_into_memory(path, digest=False)[0], path)
    expected = (
        pl.DataFrame(schema=features_schema(spec))
        .to_arrow(compat_level=pl.CompatLevel.oldest())
        .schema
    )
    if not table.schema.equals(expected):
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: features schema mismatch:\n{table.schema}\n"
            f"expected:\n{expected}"
        )
    if not table.column("entity_id").equals(scores.column("entity_id")):
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: {path} does not hold the scores' entities in "
            "their order"
        )
    return table


def _verify(manifest: SnapshotManifest, path: Path, digest: str, expected: str) -> None:
    if digest != expected:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id}: sha256 of {path} is {digest}, manifest says "
            f"{expected} (corrupt, partially written or changed after publishing)"
        )


def describe(manifest: SnapshotManifest) -> dict[str, Any]:
    """A small JSON-able summary (for logs and metadata)."""
    return {
        "snapshot_id": manifest.snapshot_id,
        "model": f"{manifest.model_name}:{manifest.model_version}",
        "rows": manifest.row_count,
        "created_at": manifest.created_at.isoformat(),
    }
