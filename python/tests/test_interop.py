"""Results read by pandas, polars and DuckDB, the last two through the Arrow
PyCapsule stream (no copy through pyarrow), and rows from them registered back."""

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa

from conftest import LAKE_ROWS

QUERY = "SELECT key, image_info(img)['width'] AS width FROM lake ORDER BY key"


def test_pandas(engine):
    df = engine.sql(QUERY).to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["key", "width"]
    assert len(df) == LAKE_ROWS


def test_polars_reads_the_capsule_stream(engine):
    expected = engine.sql(QUERY).to_arrow()
    df = pl.DataFrame(engine.sql(QUERY))  # __arrow_c_stream__, no pyarrow in between
    assert df.shape == (LAKE_ROWS, 2)
    assert df.to_arrow().column("width").to_pylist() == expected.column("width").to_pylist()
    assert engine.sql(QUERY).to_polars().equals(df)


def test_duckdb_reads_the_capsule_stream(engine):
    res = engine.sql(QUERY)
    [(n, widest)] = duckdb.sql("SELECT count(*), max(width) FROM res").fetchall()
    assert n == LAKE_ROWS
    assert widest == max(w for w in engine.sql(QUERY).to_arrow().column("width").to_pylist() if w)


def test_pyarrow_reads_the_stream_batch_by_batch(engine):
    reader = pa.RecordBatchReader.from_stream(engine.sql(QUERY))
    assert reader.schema.names == ["key", "width"]
    assert sum(b.num_rows for b in reader) == LAKE_ROWS


def test_rows_from_other_libraries_register_as_tables(engine):
    engine.register("from_pandas", pd.DataFrame({"a": [1, 2, 3]}))
    engine.register("from_polars", pl.DataFrame({"a": [4, 5]}))
    engine.register("from_duckdb", duckdb.sql("SELECT 6 AS a"))
    got = engine.sql(
        "SELECT sum(a) AS s FROM (SELECT a FROM from_pandas UNION ALL "
        "SELECT a FROM from_polars UNION ALL SELECT a FROM from_duckdb)"
    ).to_pylist()
    assert got == [{"s": 21}]
