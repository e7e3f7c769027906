"""Regenerate the hostile ingest corpus in ``corpus/`` from the bundled ACS rows.

Run it only to change the corpus (``.venv/bin/python tests/reliability/ingest/make_corpus.py``);
the files are kept in git, and ``corpus_cases.json`` beside them names the expected outcome of each,
which ``test_ingest_reliability_corpus.py`` checks.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import polars as pl

from pipelines.settings import BUNDLED_SPEC

HERE = Path(__file__).parent / "corpus"
ROWS = 40


def _rows(start: int) -> pl.DataFrame:
    acs = pl.read_parquet(BUNDLED_SPEC.parent / "employment_MA.parquet", n_rows=start + ROWS)
    return acs.slice(start, ROWS).drop("employed")


def _parquet(df: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    return buffer.getvalue()


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for old in HERE.iterdir():
        old.unlink()
    ok = _rows(0)
    files: dict[str, bytes] = {
        "batch_ok.parquet": _parquet(ok),
        "batch_truncated.parquet": _parquet(_rows(100))[:700],
        "batch_wrongtypes.csv": _rows(200)
        .with_columns(pl.lit("not a number").alias("AGEP"))
        .write_csv()
        .encode(),
        "batch_hugestring.parquet": _parquet(
            _rows(300).with_columns(
                pl.when(pl.int_range(pl.len()) == 0)
                .then(pl.lit("x" * 2_000_000))
                .otherwise(pl.col("SCHL"))
                .alias("SCHL")
            )
        ),
        "batch_x y.parquet": _parquet(_rows(400)),
        "batch_\u00e9t\u00e9.parquet": _parquet(_rows(500)),
        "batch_empty.csv": b"",
        "batch_headeronly.csv": (",".join(ok.columns) + "\n").encode(),
        "batch_dupids.parquet": _parquet(
            _rows(600).with_columns(
                pl.when(pl.int_range(pl.len()) == 1).then(600).otherwise(pl.col("id")).alias("id")
            )
        ),
        "batch_naninf.parquet": _parquet(
            _rows(700).with_columns(
                pl.when(pl.int_range(pl.len()) == 0)
                .then(math.nan)
                .when(pl.int_range(pl.len()) == 1)
                .then(math.inf)
                .otherwise(pl.col("AGEP"))
                .alias("AGEP")
            )
        ),
        "batch_bom.csv": b"\xef\xbb\xbf" + _rows(800).write_csv().encode(),
        "batch_mixedsep.csv": _rows(900).write_csv().encode()
        + _rows(950).head(3).write_csv(separator=";", include_header=False).encode(),
        "batch_crossdup.parquet": _parquet(_rows(20)),  # ids 20-39 are also in batch_ok
        "batch_wrongidtype.parquet": _parquet(ok.with_columns(pl.col("id").cast(pl.String) + "a")),
        "labels_badtarget.csv": b"id,employed\n0,7\n1,yes\n2,1\n",
        "notes.txt": b"not a batch",
    }
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
