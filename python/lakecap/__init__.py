"""lakecap: curate image-caption lakes with SQL, from Python.

    import lakecap
    lakecap.sql("SELECT hamming(15, 0) AS d").to_pandas()

    eng = lakecap.Engine(options={"on_error": "fail"})
    eng.register("photos", "lake/")            # a file, folder, glob or URL
    eng.register("extra", pyarrow_table)        # anything with __arrow_c_stream__
    curated = eng.run("sql/curate.sql", lake="lake/", out="out/")

A `Result` is lazy for a query (it runs on each read, with a progress bar
after a second in notebooks and terminals; Ctrl-C cancels it) and already
run for statements with effects (`COPY`, `CREATE`, `INSERT`, `SET`). It
exports the Arrow PyCapsule stream (`__arrow_c_stream__`), so
`polars.DataFrame(result)` and DuckDB read it without a copy.

`lakecap.register(ctx)` adds the synchronous functions, the aggregate and
the table functions to a datafusion-python `SessionContext`;
`lakecap.session_config()` is a `SessionConfig` that also carries the
`lakecap.*` options. Model functions (`recaption`, `fuse`, `clip_score`, …)
are async, which datafusion-ffi cannot carry: run them through `Engine`.

Programs that run models on the CPU should call `lakecap.tune_allocator()`
once: it keeps glibc from unmapping and re-faulting activation buffers
(15-25% of model time) but changes malloc settings for the whole process.
"""

from __future__ import annotations

import html
import os
import threading
import warnings
import weakref
from typing import Any, Mapping

from lakecap._lakecap import DATAFUSION_FFI_MAJOR, LakecapError, __version__
from lakecap._lakecap import Engine as _Engine
from lakecap._lakecap import FfiOptions as _FfiOptions
from lakecap._lakecap import ffi_functions as _ffi_functions
from lakecap._lakecap import ffi_table_functions as _ffi_table_functions
from lakecap._lakecap import sample_lake as _sample_lake
from lakecap._lakecap import tune_allocator
from lakecap._progress import Progress

__all__ = [
    "Engine",
    "LakecapError",
    "LakecapWarning",
    "Result",
    "register",
    "run",
    "sample_lake",
    "session_config",
    "sql",
    "tune_allocator",
    "__version__",
]


class LakecapWarning(UserWarning):
    """Rows a function could not process and turned into NULL (counted per
    function, column and kind; the message names the first row)."""


def _report(counted: list[tuple], stacklevel: int) -> list[dict[str, Any]]:
    """Counted warnings as dicts, each also raised as a `LakecapWarning`."""
    out = [dict(zip(("function", "column", "kind", "count", "first"), w)) for w in counted]
    for w in out:
        warnings.warn(
            f"{w['function']}({w['column']}): {w['count']} row(s) gave NULL: "
            f"{w['kind']} (first: {w['first']})",
            LakecapWarning,
            stacklevel=stacklevel,
        )
    return out


class Result:
    """One statement's rows: lazy for a query, already run otherwise."""

    def __init__(self, query: Any, progress: bool | None):
        self._query = query
        self._progress = progress
        # Rows turned NULL: by the statements run at the call, then by the
        # latest read of a lazy query.
        self.warnings: list[dict[str, Any]] = _report(query.ran_warnings, stacklevel=4)

    @property
    def schema(self):
        """The columns, as a `pyarrow.Schema` (nothing runs)."""
        return self._query.schema

    def to_arrow(self):
        """The rows as a `pyarrow.Table` (a lazy query runs now)."""
        with Progress(self._progress) as bar:
            table, counted = self._query.collect(bar.update if bar.enabled else None)
        if counted:
            self.warnings = _report(counted, stacklevel=3)
        return table

    def to_pandas(self):
        """The rows as a `pandas.DataFrame`."""
        return self.to_arrow().to_pandas()

    def to_polars(self):
        """The rows as a `polars.DataFrame`."""
        import polars

        return polars.from_arrow(self.to_arrow())

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts."""
        return self.to_arrow().to_pylist()

    def __arrow_c_stream__(self, requested_schema: object | None = None):
        """The Arrow PyCapsule stream: batches as they are computed."""
        return self._query.__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        state = "done" if self._query.is_done else "lazy"
        return f"<lakecap.Result ({state}) {self.schema}>"

    def _repr_html_(self) -> str:
        # Displaying a lazy query must not run it (models included).
        if not self._query.is_done:
            cols = "".join(
                f"<li><code>{html.escape(f.name)}</code>: {html.escape(str(f.type))}</li>"
                for f in self.schema
            )
            return f"<p>lakecap.Result (lazy: runs on .to_arrow() and the like)</p><ul>{cols}</ul>"
        table = self.to_arrow()
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v)[:80])}</td>" for v in r.values()) + "</tr>"
            for r in table.slice(0, 20).to_pylist()
        )
        head = "".join(f"<th>{html.escape(n)}</th>" for n in table.column_names)
        return f"<table><tr>{head}</tr>{rows}</table><p>{table.num_rows} rows</p>"


class Engine:
    """A lakecap session: every function and `lakecap.*` option.

    `options` are set as `SET` would set them; a name without a dot is a
    `lakecap.` option (`{"on_error": "fail", "device": "cpu"}`). `config_file`
    is a `lakecap.toml` (default: `./lakecap.toml` when present); the
    `LAKECAP_*` environment applies unless `ignore_env`. `cluster` runs
    queries on a Ballista scheduler (`df://HOST:PORT`). `progress`: True,
    False, or None to show a bar only in notebooks and terminals.
    """

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        config_file: str | os.PathLike | None = None,
        cluster: str | None = None,
        ignore_env: bool = False,
        progress: bool | None = None,
    ):
        self._engine = _Engine(
            os.fspath(config_file) if config_file is not None else None, cluster, ignore_env
        )
        self.progress = progress
        for key, value in (options or {}).items():
            self.set(key, value)

    def sql(self, query: str) -> Result:
        """Plans every statement of `query` (bad SQL fails here), runs all but
        the last, and returns the last as a `Result`."""
        with Progress(self.progress) as bar:
            q = self._engine.sql(query, bar.update if bar.enabled else None)
        return Result(q, self.progress)

    def run(self, path: str | os.PathLike, /, **vars: Any) -> Result:
        """Runs a SQL script, `${NAME}` taken from `vars`, else the environment
        (as `lakecap run --define NAME=VALUE`), and returns its last statement's rows."""
        values = {k: _sql_text(v) for k, v in vars.items()}
        with Progress(self.progress) as bar:
            q = self._engine.run(os.fspath(path), values, bar.update if bar.enabled else None)
        return Result(q, self.progress)

    def register(self, name: str, data: Any, *, format: str | None = None) -> None:
        """Makes `data` queryable as table `name`: a path (file, folder, glob
        or URL; `format` parquet, csv, json or arrow, by default from the
        name) or rows (a pyarrow Table or RecordBatchReader, a pandas or
        polars DataFrame, a DuckDB relation, a lakecap Result: anything with
        `__arrow_c_stream__`). A table of that name is replaced."""
        if isinstance(data, (str, os.PathLike)):
            self._engine.register_path(name, os.fspath(data), format)
            return
        if not hasattr(data, "__arrow_c_stream__"):
            raise TypeError(
                f"cannot register {type(data).__name__} as table {name}: pass a path or "
                "rows with __arrow_c_stream__ (pyarrow, pandas, polars, DuckDB)"
            )
        self._engine.register_arrow(name, data)

    def set(self, key: str, value: Any) -> None:
        """Sets an option for this session (`on_error` is `lakecap.on_error`)."""
        if "." not in key:
            key = f"lakecap.{key}"
        self._engine.set(key, _sql_text(value))

    @property
    def options(self) -> dict[str, str]:
        """The session's `lakecap.*` options."""
        return dict(self._engine.options())


def _sql_text(value: Any) -> str:
    if value is None:
        raise TypeError("None is not a value for an option or ${VAR}: pass a string or number")
    if isinstance(value, bool):
        return "true" if value else "false"
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The engine `lakecap.sql` and `lakecap.run` use (made on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        return _default


def sql(query: str) -> Result:
    """`Engine.sql` on the default engine."""
    return default_engine().sql(query)


def run(path: str | os.PathLike, /, **vars: Any) -> Result:
    """`Engine.run` on the default engine."""
    return default_engine().run(path, **vars)


def sample_lake(dir: str | os.PathLike, rows: int = 240, seed: int = 42) -> dict[str, Any]:
    """Writes lakecap's sample lake to `dir` (real photos, generated images,
    known defects; as `lakecap sample-lake`) and says what it wrote."""
    n, files, defects = _sample_lake(os.fspath(dir), rows, seed)
    return {"rows": n, "files": [str(f) for f in files], "defects": dict(defects)}


def _check_datafusion():
    try:
        import datafusion
    except ImportError as e:
        raise LakecapError(
            "lakecap.register needs datafusion-python: pip install 'lakecap[datafusion]'"
        ) from e
    major = int(datafusion.__version__.split(".")[0])
    if major != DATAFUSION_FFI_MAJOR:
        raise LakecapError(
            f"lakecap is built for datafusion {DATAFUSION_FFI_MAJOR}.x, but datafusion "
            f"{datafusion.__version__} is installed: their FFI layouts differ. "
            f"pip install 'datafusion>={DATAFUSION_FFI_MAJOR},<{DATAFUSION_FFI_MAJOR + 1}'"
        )
    return datafusion


def session_config(config=None):
    """A datafusion `SessionConfig` (or `config`) with the `lakecap.*` options,
    for `SessionContext(lakecap.session_config())`: datafusion-python adds
    option extensions only to a new context. Values set with `SET` there are
    checked when a lakecap function reads them."""
    datafusion = _check_datafusion()
    config = config if config is not None else datafusion.SessionConfig()
    return config.with_extension(_FfiOptions())


def register(ctx) -> list[str]:
    """Adds lakecap's synchronous functions (`phash`, `image_info`, …), the
    `caption_stats` aggregate and the table functions (`near_duplicates`,
    `semantic_duplicates`, `kmeans`, `knn`) to a datafusion-python
    `SessionContext`, and returns their names. The installed datafusion's
    major version must be lakecap's. Model functions are async, which
    datafusion-ffi cannot carry: run them through `lakecap.Engine`."""
    datafusion = _check_datafusion()
    from datafusion.user_defined import TableFunction

    names = []
    scalars, aggregates = _ffi_functions()
    for f in scalars:
        ctx.register_udf(datafusion.udf(f))
        names.append(f.name)
    for f in aggregates:
        ctx.register_udaf(datafusion.udaf(f))
        names.append(f.name)
    # Table functions read the tables they name through the context, held
    # weakly: the context owns the functions, which must not keep it alive.
    context = weakref.ref(ctx)

    def read(name: str):
        live = context()
        if live is None:
            raise LakecapError(f"the SessionContext of table {name} no longer exists")
        return live.table(name)

    for f in _ffi_table_functions(read):
        ctx.register_udtf(TableFunction(f.name, f, ctx))
        names.append(f.name)
    return names
