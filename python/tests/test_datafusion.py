"""lakecap in a datafusion-python SessionContext through datafusion-ffi:
functions, the aggregate, table functions, options, and the version check."""

import datafusion
import pyarrow as pa
import pytest
from datafusion import SessionContext

import lakecap
from conftest import LAKE_ROWS

HASHES = (
    "SELECT key, phash(img) AS p, dhash(img) AS d, hamming(phash(img), dhash(img)) AS h, "
    "alt_quality(alt) AS q FROM lake ORDER BY key"
)


@pytest.fixture()
def ctx(lake) -> SessionContext:
    ctx = SessionContext(lakecap.session_config())
    ctx.register_parquet("lake", str(lake))
    return ctx


def test_register_adds_the_synchronous_functions(ctx):
    names = lakecap.register(ctx)
    assert {"phash", "dhash", "hamming", "image_info", "caption_stats", "near_duplicates"} <= set(
        names
    )
    # Model functions are async: FFI cannot carry them.
    assert "recaption" not in names and "clip_score" not in names


def test_results_equal_the_engines(ctx, engine):
    lakecap.register(ctx)
    theirs = ctx.sql(HASHES).to_arrow_table().to_pylist()
    ours = engine.sql(HASHES).to_pylist()
    assert len(theirs) == LAKE_ROWS
    assert theirs == ours


def test_the_aggregate_and_a_table_function(ctx, engine):
    lakecap.register(ctx)
    stats = "SELECT caption_stats(alt) AS s FROM lake"
    assert ctx.sql(stats).to_arrow_table().to_pylist() == engine.sql(stats).to_pylist()
    ctx.sql("CREATE TABLE hashed AS SELECT key, phash(img) AS h FROM lake WHERE phash(img) IS NOT NULL")
    engine.sql("CREATE TABLE hashed AS SELECT key, phash(img) AS h FROM lake WHERE phash(img) IS NOT NULL")
    dups = "SELECT * FROM near_duplicates('hashed', 'key', 'h', 6) ORDER BY 1, 2"
    theirs = ctx.sql(dups).to_arrow_table().to_pylist()
    assert theirs == engine.sql(dups).to_pylist()
    assert theirs, "the sample lake has near-duplicate photos"


def test_options_set_in_the_context_reach_the_functions(ctx):
    lakecap.register(ctx)
    nulls = ctx.sql("SELECT count(*) - count(phash(img)) AS n FROM lake").to_arrow_table()
    assert nulls.column("n")[0].as_py() > 0
    ctx.sql("SET lakecap.on_error = 'fail'")
    with pytest.raises(Exception, match="phash\\(img\\)"):
        ctx.sql("SELECT phash(img) FROM lake").collect()
    ctx.sql("SET lakecap.on_error = 'sometimes'")
    with pytest.raises(Exception, match="lakecap options"):
        ctx.sql("SELECT phash(img) FROM lake").collect()


def test_a_plain_context_gets_the_functions_with_default_options(lake):
    ctx = SessionContext()
    ctx.register_record_batches("t", [[pa.record_batch({"a": [15]})]])
    lakecap.register(ctx)
    assert ctx.sql("SELECT hamming(a, 0) AS d FROM t").to_arrow_table().to_pylist() == [{"d": 4}]


def test_a_datafusion_of_another_major_is_refused(ctx, monkeypatch):
    monkeypatch.setattr(datafusion, "__version__", "54.1.0")
    with pytest.raises(lakecap.LakecapError, match="built for datafusion 55.x, but datafusion 54.1.0"):
        lakecap.register(ctx)


def test_a_table_function_joining_a_table_with_itself(ctx, engine):
    lakecap.register(ctx)
    vectors = "SELECT key, [CAST(length(key) AS FLOAT), CAST(ascii(key) AS FLOAT)] AS v FROM lake"
    ctx.sql(f"CREATE TABLE vecs AS {vectors}")
    engine.sql(f"CREATE TABLE vecs AS {vectors}")
    q = "SELECT * FROM knn('vecs', 'key', 'v', 'vecs', 'key', 'v', 3) ORDER BY 1, 2, 3"
    theirs = ctx.sql(q).to_arrow_table().to_pylist()
    assert len(theirs) == 3 * LAKE_ROWS
    assert theirs == engine.sql(q).to_pylist()
