"""Bad input: Python exceptions that name what failed (statement, file,
function, column, row), counted warnings for rows turned NULL, and an
engine that keeps working afterwards."""

import warnings

import pytest

import lakecap
from conftest import LAKE_ROWS


def test_bad_sql_fails_at_the_call(engine):
    with pytest.raises(lakecap.LakecapError, match="SQL syntax error"):
        engine.sql("SELEC 1")
    with pytest.raises(lakecap.LakecapError, match="statement 1 failed: SELECT \\* FROM nowhere"):
        engine.sql("SELECT * FROM nowhere")
    with pytest.raises(lakecap.LakecapError, match="phash"):
        engine.sql("SELECT phash(1, 2, 3)")


def test_a_row_that_fails_names_the_function_column_and_row(engine):
    engine.set("on_error", "fail")
    with pytest.raises(lakecap.LakecapError) as e:
        engine.sql("SELECT key, phash(img) FROM lake").to_arrow()
    message = str(e.value)
    assert "phash" in message and "img" in message and "key = '" in message


def test_rows_turned_null_are_counted_warnings(engine):
    res = engine.sql("SELECT phash(img) AS p FROM lake WHERE img IS NOT NULL")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = res.to_arrow()
    ours = [w for w in caught if issubclass(w.category, lakecap.LakecapWarning)]
    assert ours, "rows turned NULL give a LakecapWarning"
    counted = sum(w["count"] for w in res.warnings)
    assert counted == t.column("p").null_count > 0
    assert all(w["function"] == "phash" and w["column"] == "img" for w in res.warnings)
    assert "key = '" in res.warnings[0]["first"]


def test_bad_paths_names_and_types(engine, tmp_path):
    with pytest.raises(lakecap.LakecapError, match="cannot register .*missing.parquet as table t: .*No files found"):
        engine.register("t", tmp_path / "missing.parquet")
    with pytest.raises(lakecap.LakecapError, match="no such file or folder: .*missing"):
        engine.register("t", tmp_path / "missing")
    with pytest.raises(ValueError, match="not a table name"):
        engine.register("bad name; DROP", tmp_path)
    with pytest.raises(TypeError, match="cannot register int"):
        engine.register("t", 42)
    with pytest.raises(ValueError, match="cannot tell the format"):
        engine.register("t", tmp_path)
    with pytest.raises(lakecap.LakecapError, match="cannot read SQL script .*nope.sql"):
        engine.run(tmp_path / "nope.sql")


def test_bad_options_are_refused(engine):
    with pytest.raises(lakecap.LakecapError, match="on_error must be 'null' or 'fail'"):
        engine.set("on_error", "sometimes")
    with pytest.raises(lakecap.LakecapError):
        engine.set("lakecap.no_such_option", "1")
    with pytest.raises(ValueError, match="not an option name"):
        engine.set("x = 1; DROP TABLE lake; --", "1")


def test_the_engine_works_after_errors(engine):
    for bad in ["SELEC", "SELECT * FROM nowhere", "SELECT phash()"]:
        with pytest.raises(lakecap.LakecapError):
            engine.sql(bad)
    assert engine.sql("SELECT count(*) AS n FROM lake").to_pylist() == [{"n": LAKE_ROWS}]


def test_statements_run_at_the_call_report_their_warnings_then(engine, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = engine.sql(
            f"COPY (SELECT key, phash(img) AS p FROM lake) TO '{tmp_path}/o/' STORED AS PARQUET"
        )
    assert any(issubclass(w.category, lakecap.LakecapWarning) for w in caught)
    assert {w["function"] for w in res.warnings} == {"phash"}
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        res.to_arrow()
    assert not again, "reported once, at the call"


def test_failures_name_the_script_statement_and_table(engine, tmp_path, lake):
    script = tmp_path / "bad.sql"
    script.write_text("SELECT 1;\nSELECT * FROM missing_table;\n")
    with pytest.raises(lakecap.LakecapError, match=r"in .*bad.sql: statement 2 failed"):
        engine.run(script)
    lazy = engine.sql("SELECT CAST(alt AS INT) AS n FROM lake")
    with pytest.raises(lakecap.LakecapError, match=r"statement 1 failed: SELECT CAST\(alt AS INT\)"):
        lazy.to_arrow()
    # SQL keywords are table names too.
    engine.register("order", lake)
    assert engine.sql('SELECT count(*) AS n FROM "order"').to_pylist() == [{"n": LAKE_ROWS}]
    with pytest.raises(TypeError, match="None is not a value"):
        engine.set("on_error", None)
