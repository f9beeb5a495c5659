"""Engine.sql, Engine.run, table registration and options, compared with
the CLI's results and with the lake's known contents."""

import json
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakecap
from conftest import LAKE_ROWS, run_cli

HASHES = (
    "SELECT key, phash(img) AS p, dhash(img) AS d, alt_quality(alt)['score'] AS q "
    "FROM lake ORDER BY key"
)


def test_query_returns_arrow_with_lakecap_types(engine):
    t = engine.sql(HASHES).to_arrow()
    assert isinstance(t, pa.Table)
    assert t.num_rows == LAKE_ROWS
    assert t.schema.field("p").type == pa.uint64()
    assert t.schema.field("q").type == pa.float32()
    # Corrupt and non-image rows hash to NULL; the real photos do not.
    assert 0 < t.column("p").null_count < LAKE_ROWS


def test_results_equal_the_clis(engine, lake, cli):
    ours = engine.sql(HASHES).to_pylist()
    create = f"CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '{lake}/'"
    out = run_cli(cli, "sql", "--format", "json", f"{create}; {HASHES}")
    assert out.returncode == 0, out.stderr
    theirs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(theirs) == len(ours) == LAKE_ROWS
    for a, b in zip(ours, theirs):
        # The CLI prints float32 scores at their shortest (0.3 for 0.30000001).
        q = b.get("q")
        assert a == {k: b.get(k) for k in a} | {"q": q if q is None else pytest.approx(q, rel=1e-6)}


def test_a_query_is_lazy_and_runs_on_each_read(engine, tmp_path):
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), src)
    engine.register("t", src)
    res = engine.sql("SELECT sum(x) AS s FROM t")
    assert repr(res).startswith("<lakecap.Result (lazy)")
    assert res.schema.names == ["s"]
    assert res.to_pylist() == [{"s": 3}]
    pq.write_table(pa.table({"x": [10, 20]}), src)
    assert res.to_pylist() == [{"s": 30}]


def test_statements_with_effects_run_at_the_call(engine, tmp_path):
    out = tmp_path / "out"
    res = engine.sql(
        f"COPY (SELECT key FROM lake WHERE alt IS NOT NULL) TO '{out}/' STORED AS PARQUET"
    )
    assert repr(res).startswith("<lakecap.Result (done)")
    written = pq.read_table(out)
    assert 0 < written.num_rows <= LAKE_ROWS
    # Several statements: all run, the last is returned.
    res = engine.sql("CREATE TABLE k AS SELECT key FROM lake; SELECT count(*) AS n FROM k")
    assert res.to_pylist() == [{"n": LAKE_ROWS}]


def test_run_a_script_with_variables(engine, lake, tmp_path, cli):
    script = tmp_path / "curate.sql"
    script.write_text(
        "CREATE EXTERNAL TABLE src STORED AS PARQUET LOCATION '${lake}';\n"
        "SELECT count(*) AS n, count(phash(img)) AS hashed FROM src WHERE key >= '${from}';\n"
    )
    ours = engine.run(script, lake=f"{lake}/", **{"from": "0"}).to_pylist()
    out = run_cli(cli, "run", "--format", "json", "-D", f"lake={lake}/", "-D", "from=0", str(script))
    assert out.returncode == 0, out.stderr
    assert ours == [json.loads(out.stdout.splitlines()[-1])]
    assert ours[0]["n"] == LAKE_ROWS
    with pytest.raises(lakecap.LakecapError, match=r"undefined variable \$\{from\}"):
        engine.run(script, lake=f"{lake}/")


def test_register_rows_and_paths(engine, tmp_path):
    engine.register("nums", pa.table({"n": [1, 2, 3]}))
    assert engine.sql("SELECT sum(n) AS s FROM nums").to_pylist() == [{"s": 6}]
    # A table of the same name is replaced.
    engine.register("nums", pa.table({"n": [5]}))
    assert engine.sql("SELECT sum(n) AS s FROM nums").to_pylist() == [{"s": 5}]
    csv = tmp_path / "a.csv"
    csv.write_text("k,v\na,1\nb,2\n")
    engine.register("from_csv", csv)
    assert engine.sql("SELECT k FROM from_csv ORDER BY v").to_pylist() == [{"k": "a"}, {"k": "b"}]
    # A lakecap result registers as rows too.
    engine.register("again", engine.sql("SELECT n * 2 AS m FROM nums"))
    assert engine.sql("SELECT m FROM again").to_pylist() == [{"m": 10}]


def test_options_are_per_engine(lake):
    strict = lakecap.Engine({"on_error": "fail"}, ignore_env=True, progress=False)
    lenient = lakecap.Engine(ignore_env=True, progress=False)
    assert strict.options["lakecap.on_error"] == "fail"
    assert lenient.options["lakecap.on_error"] == "null"
    strict.set("lakecap.on_error", "null")
    assert strict.options["lakecap.on_error"] == "null"


def test_module_level_sql_uses_a_default_engine():
    assert lakecap.sql("SELECT hamming(15, 0) AS d").to_pylist() == [{"d": 4}]
    assert lakecap.default_engine() is lakecap.default_engine()


def test_progress_reports_rows_scanned_against_the_total(engine):
    calls = []
    q = engine._engine.sql("SELECT count(phash(img)) AS n FROM lake", None)
    table, _ = q.collect(lambda rows, total, secs: calls.append((rows, total, secs)))
    assert table.num_rows == 1
    assert calls, "the callback runs at least once, at the end"
    rows, total, _ = calls[-1]
    assert rows == total == LAKE_ROWS


def test_an_exception_in_progress_cancels_the_query(engine):
    q = engine._engine.sql(
        "SELECT count(*) AS n FROM generate_series(1, 2000000000) a(x) WHERE x % 7 = 3", None
    )

    def interrupt(rows, total, secs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        q.collect(interrupt)
    # The engine is free for the next query.
    assert engine.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_progress_bar_shows_after_a_second(capsys):
    from lakecap._progress import Progress

    with Progress(True) as bar:
        bar.update(10, 100, 0.5)
        assert bar._bar is None
        bar.update(40, 100, 1.5)
        assert bar._bar.n == 40 and bar._bar.total == 100
    with Progress(False) as bar:
        assert not bar.enabled


def test_sample_lake_reports_its_defects(tmp_path):
    report = lakecap.sample_lake(tmp_path / "l", rows=24, seed=1)
    assert report["rows"] == 24
    assert report["files"] and all(f.endswith(".parquet") for f in report["files"])
    assert sum(report["defects"].values()) > 0


def test_a_recipe_runs_as_the_cli_runs_it(lake, tmp_path, cli):
    from conftest import REPO

    recipe = REPO / "sql" / "exact_dedup.sql"
    eng = lakecap.Engine(ignore_env=True, progress=False)
    ours = eng.run(recipe, LAKE=f"{lake}/", OUT=f"{tmp_path}/py/").to_pylist()
    out = run_cli(
        cli, "run", "--format", "json", "-D", f"LAKE={lake}/", "-D", f"OUT={tmp_path}/cli/", str(recipe)
    )
    assert out.returncode == 0, out.stderr
    assert ours == [json.loads(out.stdout.splitlines()[-1])]
    kept = pq.read_table(tmp_path / "py").num_rows
    assert kept == pq.read_table(tmp_path / "cli").num_rows
    assert 0 < kept <= ours[0]["rows"]


def test_ctrl_c_cancels_a_running_query():
    """A real SIGINT to a Python process in the middle of a long query."""
    code = (
        "import lakecap\n"
        "eng = lakecap.Engine(ignore_env=True, progress=False)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    eng.sql('SELECT count(*) FROM generate_series(1, 50000000000) a(x) "
        "WHERE x % 7 = 3').to_arrow()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "print(eng.sql('SELECT 1 AS one').to_pylist(), flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    finally:
        p.kill()
    assert out.split() == ["interrupted", "[{'one':", "1}]"]
    assert p.returncode == 0
