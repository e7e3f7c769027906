"""The lookup index over a scores table in memory: binary search on the sorted id buffer.

Nothing is copied when the index is built: integer ids are a numpy view of the Arrow buffer
(``searchsorted``), string ids are searched through their offsets and data buffers (the table
itself is the snapshot's copy in anonymous memory, see ``pipelines.snapshot.read_into_memory``).

Rows are read through ``memoryview``s of the numpy views (an index gives a Python int or float,
not a numpy scalar), and :meth:`ScoreIndex.json` encodes them with orjson when it is installed
(it comes with dvc), else with ``json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the lock (through dvc)
    orjson = None  # type: ignore[assignment]

import numpy as np
import numpy.typing as npt
import pyarrow as pa

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

EntityId = int | str
#: Bound of the per-index cache of formatted timestamps (cleared when full).
CACHE_SIZE = 65_536


def _all_finite(row: dict[str, Any]) -> bool:
    """No NaN or infinity among the row's numbers (None, from a nullable column, is fine)."""
    numbers = [row["score"], row["threshold"], row["expected_value"]]
    numbers += [reason["contribution"] for reason in row["reasons"]]
    try:
        if isfinite(sum(numbers)):  # NaN and infinities carry through a sum: one check
            return True
    except TypeError:  # a None
        pass
    return all(x is None or isfinite(x) for x in numbers)  # exact (a sum can overflow)


def _dumps_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


#: JSON bytes of a row: orjson (~0.5 us a row) or the standard library (~8 us).
dumps: Callable[[Any], bytes] = orjson.dumps if orjson is not None else _dumps_json


def _single_chunk(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _values(array: pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """Zero-copy numpy view of a fixed-width Arrow array's values."""
    count = array.offset + len(array)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=count)[array.offset :]


class _Strings:
    """Zero-copy access to a (large_)string array without a Python object per row."""

    def __init__(self, array: pa.Array) -> None:
        if not (pa.types.is_large_string(array.type) or pa.types.is_string(array.type)):
            raise TypeError(f"expected a string array, got {array.type}")
        offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
        buffers = array.buffers()
        count = array.offset + len(array) + 1
        self._offsets = np.frombuffer(buffers[1], dtype=offset_type, count=count)[array.offset :]
        self._data = memoryview(buffers[2]) if buffers[2] is not None else memoryview(b"")
        self._offset_view = self._offsets.data
        self._array = array
        self.has_nulls = array.null_count > 0

    def __len__(self) -> int:
        return len(self._array)

    def raw(self, i: int) -> bytes:
        offsets = self._offset_view
        return bytes(self._data[offsets[i] : offsets[i + 1]])

    def get(self, i: int) -> str | None:
        if self.has_nulls and not self._array[i].is_valid:
            return None
        return self.raw(i).decode()

    def text(self, i: int) -> str:
        """Value ``i`` (only called when there are no nulls)."""
        offsets = self._offset_view
        return str(self._data[offsets[i] : offsets[i + 1]], "utf-8")

    def texts(self, start: int, stop: int) -> list[str]:
        """Values ``start:stop`` (no nulls): one slice and decode for the run, then split."""
        offsets = self._offset_view
        base = offsets[start]
        raw = self._data[base : offsets[stop]]
        text = str(raw, "utf-8")
        if len(text) != len(raw):  # not ASCII: character and byte offsets differ
            return [self.text(k) for k in range(start, stop)]
        return [text[offsets[k] - base : offsets[k + 1] - base] for k in range(start, stop)]


class _Dictionary:
    """Dictionary-encoded strings: an int32 index view plus the (few) values as Python str."""

    def __init__(self, array: pa.Array) -> None:
        if not pa.types.is_dictionary(array.type):
            raise TypeError(f"expected a dictionary array, got {array.type}")
        self._values: list[str | None] = array.dictionary.to_pylist()
        self._indices = _values(array.indices, np.int32)
        self._index_view = self._indices.data
        self._array = array
        self.has_nulls = array.null_count > 0

    def get(self, i: int) -> str | None:
        if self.has_nulls and not self._array[i].is_valid:
            return None
        return self._values[self._index_view[i]]

    def text(self, i: int) -> str | None:
        """Value ``i`` (only called when there are no nulls)."""
        return self._values[self._index_view[i]]


class _Booleans:
    """Bit-packed Arrow booleans read without a scalar object per row."""

    def __init__(self, array: pa.Array) -> None:
        self._bits = np.frombuffer(array.buffers()[1], dtype=np.uint8).data
        self._offset = array.offset
        self._array = array
        self.has_nulls = array.null_count > 0

    def get(self, i: int) -> bool | None:
        if self.has_nulls and not self._array[i].is_valid:
            return None
        j = i + self._offset
        return bool((self._bits[j >> 3] >> (j & 7)) & 1)


def _text(array: pa.Array) -> _Strings | _Dictionary:
    return _Dictionary(array) if pa.types.is_dictionary(array.type) else _Strings(array)


class ScoreIndex:
    """Find an entity's row in a sorted scores table and turn it into a JSON-ready dict."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows
        ids = _single_chunk(table, "entity_id")
        if ids.null_count:
            raise ValueError("entity_id has nulls")
        self._int_ids: npt.NDArray[np.int64] | None = None
        self._str_ids: _Strings | None = None
        if pa.types.is_int64(ids.type):
            self._int_ids = _values(ids, np.int64)
            self._int_view = self._int_ids.data
        else:
            self._str_ids = _Strings(ids)
        self._batch = _text(_single_chunk(table, "batch_id"))
        self._data_version = _text(_single_chunk(table, "data_version"))
        self._model_name = _text(_single_chunk(table, "model_name"))
        self._model_version = _text(_single_chunk(table, "model_version"))
        self._numbers = {
            name: (_single_chunk(table, name), _values(_single_chunk(table, name), np.float64))
            for name in ("score", "threshold", "expected_value")
        }
        self._decision = _Booleans(_single_chunk(table, "decision"))
        scored_at = _single_chunk(table, "scored_at")
        self._scored_at = (scored_at, _values(scored_at, np.int64))
        reasons = _single_chunk(table, "reasons")
        self._reasons = reasons
        self._reason_parts = self._reason_views(reasons)
        self._init_fast_path()

    def _init_fast_path(self) -> None:
        """Memoryviews for :meth:`_fast_row`, used when no column has a null (always, for
        snapshots written by batch scoring); otherwise :meth:`row` takes the checked path."""
        texts = (self._batch, self._model_name, self._model_version, self._data_version)
        numbers = [self._numbers[name][0] for name in ("score", "threshold", "expected_value")]
        self._fast = (
            self._reason_parts is not None
            and not any(t.has_nulls for t in texts)
            and not self._decision.has_nulls
            and not any(array.null_count for array in numbers)
            and not self._scored_at[0].null_count
        )
        self._score_view = self._numbers["score"][1].data
        self._threshold_view = self._numbers["threshold"][1].data
        self._expected_view = self._numbers["expected_value"][1].data
        self._scored_view = self._scored_at[1].data
        self._scored_cache: dict[int, str] = {}
        if self._reason_parts is not None:
            offsets, _, _, contributions = self._reason_parts
            self._reason_offset_view = offsets.data
            self._contribution_view = contributions.data

    @staticmethod
    def _reason_views(
        reasons: pa.Array,
    ) -> tuple[npt.NDArray[Any], _Strings, _Strings, npt.NDArray[np.float64]] | None:
        """Numpy/buffer views of list<struct<feature, value, contribution>>; None if nulls."""
        items = reasons.values
        names = [items.type.field(k).name for k in range(items.type.num_fields)]
        flat = items.flatten()  # children with the struct's offset applied
        fields = [flat[names.index(n)] for n in ("feature", "value", "contribution")]
        if reasons.null_count or items.null_count or any(f.null_count for f in fields):
            return None
        offset_type = np.int64 if pa.types.is_large_list(reasons.type) else np.int32
        count = reasons.offset + len(reasons) + 1
        offsets = np.frombuffer(reasons.buffers()[1], dtype=offset_type, count=count)
        feature, value, contribution = fields
        return (
            offsets[reasons.offset :],
            _Strings(feature),
            _Strings(value),
            _values(contribution, np.float64),
        )

    def position(self, entity_id: EntityId) -> int | None:
        """Row of ``entity_id`` or None (binary search, O(log n))."""
        if self._int_ids is not None:
            if not isinstance(entity_id, int) or not INT64_MIN <= entity_id <= INT64_MAX:
                return None
            i = int(self._int_ids.searchsorted(entity_id))
            return i if i < self.rows and self._int_view[i] == entity_id else None
        assert self._str_ids is not None
        if not isinstance(entity_id, str):
            return None
        key = entity_id.encode()
        strings = self._str_ids
        lo, hi = 0, len(strings)
        while lo < hi:
            mid = (lo + hi) // 2
            if strings.raw(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(strings) and strings.raw(lo) == key else None

    def _number(self, name: str, i: int) -> float | None:
        array, values = self._numbers[name]
        if array.null_count and not array[i].is_valid:
            return None
        return float(values[i])

    def _reasons_at(self, i: int) -> list[dict[str, Any]]:
        if self._reason_parts is None:
            value = self._reasons[i].as_py()
            return list(value) if value is not None else []
        offsets, features, values, contributions = self._reason_parts
        return [
            {
                "feature": features.raw(j).decode(),
                "value": values.raw(j).decode(),
                "contribution": float(contributions[j]),
            }
            for j in range(int(offsets[i]), int(offsets[i + 1]))
        ]

    def _fast_row(self, i: int) -> dict[str, Any]:
        entity_id: EntityId
        if self._int_ids is not None:
            entity_id = self._int_view[i]
        else:
            assert self._str_ids is not None
            entity_id = self._str_ids.text(i)
        micros: int = self._scored_view[i]
        scored_at = self._scored_cache.get(micros)
        if scored_at is None:
            if len(self._scored_cache) >= CACHE_SIZE:
                self._scored_cache.clear()
            scored_at = (EPOCH + timedelta(microseconds=micros)).isoformat()
            self._scored_cache[micros] = scored_at
        assert self._reason_parts is not None
        _, features, values, _ = self._reason_parts
        start, stop = self._reason_offset_view[i], self._reason_offset_view[i + 1]
        contributions = self._contribution_view
        return {
            "entity_id": entity_id,
            "batch_id": self._batch.text(i),
            "score": self._score_view[i],
            "decision": self._decision.get(i),
            "threshold": self._threshold_view[i],
            "model_name": self._model_name.text(i),
            "model_version": self._model_version.text(i),
            "expected_value": self._expected_view[i],
            "scored_at": scored_at,
            "data_version": self._data_version.text(i),
            "reasons": [
                {"feature": feature, "value": value, "contribution": contribution}
                for feature, value, contribution in zip(
                    features.texts(start, stop),
                    values.texts(start, stop),
                    contributions[start:stop].tolist(),
                    strict=True,
                )
            ],
        }

    def row(self, i: int) -> dict[str, Any]:
        """The scores-table row at position ``i`` as JSON-ready values."""
        if self._fast:
            return self._fast_row(i)
        entity_id: EntityId
        if self._int_ids is not None:
            entity_id = int(self._int_ids[i])
        else:
            assert self._str_ids is not None
            entity_id = self._str_ids.raw(i).decode()
        scored_array, scored_values = self._scored_at
        scored_at = (
            (EPOCH + timedelta(microseconds=int(scored_values[i]))).isoformat()
            if not scored_array.null_count or scored_array[i].is_valid
            else None
        )
        return {
            "entity_id": entity_id,
            "batch_id": self._batch.get(i),
            "score": self._number("score", i),
            "decision": self._decision.get(i),
            "threshold": self._number("threshold", i),
            "model_name": self._model_name.get(i),
            "model_version": self._model_version.get(i),
            "expected_value": self._number("expected_value", i),
            "scored_at": scored_at,
            "data_version": self._data_version.get(i),
            "reasons": self._reasons_at(i),
        }

    def outcome(self, i: int) -> tuple[float, bool] | None:
        """Score and decision of row ``i`` (for the metrics), or None when either is null."""
        score = self._number("score", i)
        decision = self._decision.get(i)
        return None if score is None or decision is None else (score, decision)

    def get(self, entity_id: EntityId) -> dict[str, Any] | None:
        """The row of ``entity_id`` or None."""
        i = self.position(entity_id)
        return None if i is None else self.row(i)

    def json(self, i: int) -> bytes:
        """The row at ``i`` as JSON bytes (compact; the values of :meth:`row`).

        A non-finite number is refused (ValueError), as ``json.dumps(allow_nan=False)`` does:
        orjson would write null where the response schema promises a number.
        """
        row = self.row(i)
        if not _all_finite(row):
            raise ValueError(f"row {i} has a non-finite number: not JSON compliant")
        return dumps(row)

    def get_json(self, entity_id: EntityId) -> bytes | None:
        """The row of ``entity_id`` as JSON bytes (see :meth:`json`), or None."""
        i = self.position(entity_id)
        return None if i is None else self.json(i)
