"""Reading a model directory's metadata: missing and corrupt files are clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.model_bundle import METADATA_FILE, ModelLoadError, load_metadata


def test_missing_metadata_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=re.escape(f"model metadata not found: {tmp_path}")):
        load_metadata(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"name": "employment"}', b"\xff\xfe\x00binary"],
    ids=["bad-json", "missing-fields", "not-utf8"],
)
def test_corrupt_metadata_is_a_model_load_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / METADATA_FILE).write_bytes(content)
    with pytest.raises(ModelLoadError, match="is corrupt"):
        load_metadata(tmp_path)
