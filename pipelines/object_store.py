"""Files on the configured object store (or the local disk) through one pyarrow filesystem.

The Delta tables go through delta-rs with :meth:`Settings.storage_options`; everything else
that reads or writes plain files on the store (the parquet files of a validated batch, serving
snapshots) goes through :func:`filesystem_for`, which builds the same endpoint and region into a
``pyarrow.fs.S3FileSystem``. Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...),
as for every other client.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow.fs as pafs

from pipelines.settings import Settings, get_settings


def is_remote(uri: str) -> bool:
    """True for ``s3://`` (or any ``scheme://`` other than ``file://``) URIs."""
    return "://" in uri and not uri.startswith("file://")


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    """An S3 filesystem on the configured endpoint (AWS itself when none is configured)."""
    endpoint = settings.s3_endpoint_url
    kwargs: dict[str, str] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs = {"endpoint_override": host.rstrip("/"), "scheme": scheme}
    if settings.s3_region:
        kwargs["region"] = settings.s3_region
    return pafs.S3FileSystem(**kwargs)


def filesystem_for(
    uris: Sequence[str], settings: Settings | None = None
) -> tuple[pafs.FileSystem, list[str]]:
    """One filesystem for ``uris`` (all local or all ``s3://``) and their paths on it."""
    remote = {is_remote(uri) for uri in uris}
    if remote == {True}:
        if any(not uri.startswith("s3://") for uri in uris):
            raise ValueError(f"only s3:// object-store URIs are supported, got {list(uris)[:3]}")
        return s3_filesystem(settings or get_settings()), [u.removeprefix("s3://") for u in uris]
    if remote == {True, False}:
        raise ValueError(f"a mix of local paths and object-store URIs: {list(uris)[:3]}")
    return pafs.LocalFileSystem(), [u.removeprefix("file://") for u in uris]
