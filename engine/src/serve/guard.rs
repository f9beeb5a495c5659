//! What a served session may run: every statement is parsed before it runs,
//! and refused when it reads or writes outside the server's root, writes
//! under `--read-only`, or sets a server-level option under `--read-only`.
//!
//! Paths are those of `CREATE EXTERNAL TABLE … LOCATION` and `COPY … TO`:
//! relative ones resolve against the root (the server's working folder), a
//! `..` component is refused outright, and the deepest existing ancestor of
//! the path is resolved through symlinks and must stay inside the root.
//! URLs (`s3://…`) are refused unless an `--allow-url` prefix names them;
//! `file://` URLs are paths.

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::sql::parser::{DFParser, ResetStatement, Statement};
use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Set, Statement as Sql, Value};
use url::Url;

/// Options that change the server for everyone (devices, caches, limits) or
/// read files from disk; `SET` of them is refused under `--read-only`.
const SERVER_LEVEL: [&str; 7] = [
    "lakecap.device",
    "lakecap.precision",
    "lakecap.cache",
    "lakecap.cache_dir",
    "lakecap.batch_size",
    "lakecap.max_pixels",
    "lakecap.max_image_bytes",
];

/// The checks of one server.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Canonical root every path must stay inside; `None`: no confinement.
    pub root: Option<PathBuf>,
    /// URL prefixes a statement may name (`s3://bucket/lake/`).
    pub allow_urls: Vec<String>,
    pub read_only: bool,
}

impl Guard {
    /// `Ok` when every statement of `sql` may run, else why not. The server
    /// runs exactly the statements checked here (no `${VAR}` substitution),
    /// so SQL that does not parse is refused here.
    pub fn check(&self, sql: &str) -> Result<(), String> {
        let statements = DFParser::parse_sql(sql).map_err(|e| format!("SQL syntax error: {e}"))?;
        self.check_statements(statements.iter())
    }

    /// [`Guard::check`] of parsed statements.
    pub fn check_statements<'a>(
        &self,
        mut statements: impl Iterator<Item = &'a Statement>,
    ) -> Result<(), String> {
        statements.try_for_each(|s| self.statement(s))
    }

    fn statement(&self, s: &Statement) -> Result<(), String> {
        match s {
            Statement::CreateExternalTable(c) => c
                .locations
                .iter()
                .try_for_each(|l| self.path(l, "LOCATION")),
            Statement::CopyTo(c) => {
                if self.read_only {
                    return Err("the server is read-only: COPY … TO is refused".into());
                }
                self.path(&c.target, "COPY … TO")
            }
            Statement::Explain(e) => self.statement(&e.statement),
            Statement::Reset(ResetStatement::Variable(name)) => self.option(name, None),
            Statement::Statement(sql) => self.sql(sql),
        }
    }

    fn sql(&self, s: &Sql) -> Result<(), String> {
        match s {
            Sql::Insert(_) | Sql::Copy { .. } | Sql::Update { .. } | Sql::Delete(_)
                if self.read_only =>
            {
                Err("the server is read-only: statements that write are refused".into())
            }
            // What a PREPARE plans runs later with EXECUTE: check it now.
            Sql::Prepare { statement, .. } => {
                self.statement(&Statement::Statement(statement.clone()))
            }
            Sql::Set(Set::SingleAssignment {
                variable, values, ..
            }) => {
                let value = match values.first() {
                    Some(Expr::Value(v)) => match &v.value {
                        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                            Some(s.as_str())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                self.option(variable, value)
            }
            _ => Ok(()),
        }
    }

    /// `SET` (with a string value) or `RESET` of option `name`.
    fn option(&self, name: &ObjectName, value: Option<&str>) -> Result<(), String> {
        // As DataFusion reads the name: unquoted parts lowercased, quotes dropped.
        let name = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(|i| match i.quote_style {
                None => i.value.to_ascii_lowercase(),
                Some(_) => i.value.clone(),
            })
            .collect::<Vec<_>>()
            .join(".");
        if self.read_only && SERVER_LEVEL.contains(&name.as_str()) {
            return Err(format!(
                "the server is read-only: {name} is a server-level option"
            ));
        }
        if self.root.is_none() {
            return Ok(());
        }
        // Folders the server writes to stay the server's.
        if name == "lakecap.cache_dir" || name.starts_with("datafusion.runtime.") {
            return Err(format!("{name} cannot be set on a server with --root"));
        }
        // A model given as a path (not an ORG/NAME id) must be inside the root.
        let path_like = |v: &str| v.starts_with('/') || v.starts_with("file:") || v.contains("..");
        match value {
            Some(v) if name.ends_with("model") && path_like(v) => self.path(v, &name),
            _ => Ok(()),
        }
    }

    /// A LOCATION or COPY target, read as DataFusion reads it
    /// (`ListingTableUrl`): `file:` URLs and paths (normalised, percent-
    /// decoded) must resolve inside the root; other URLs must lie under an
    /// `--allow-url` prefix, compared by scheme, host and path segments.
    fn path(&self, location: &str, what: &str) -> Result<(), String> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let refuse = |why: &str| Err(format!("{what} '{location}' {why}"));
        if location.split('/').any(|c| c == "..") {
            return refuse("uses '..'; paths must stay inside the server's root");
        }
        // A relative path is relative to the root (the server's working
        // folder), whatever this process's folder is.
        let joined;
        let location_abs = match Url::parse(location) {
            Err(_) if !location.starts_with('/') => {
                joined = root.join(location).to_string_lossy().into_owned();
                joined.as_str()
            }
            _ => location,
        };
        let url = match ListingTableUrl::parse(location_abs) {
            Ok(u) => u,
            Err(e) => return refuse(&format!("is not a path or URL: {e}")),
        };
        let url: &Url = url.as_ref();
        if url.scheme() != "file" {
            let allowed = self.allow_urls.iter().any(|prefix| {
                Url::parse(prefix).is_ok_and(|p| {
                    p.scheme() == url.scheme()
                        && p.host_str() == url.host_str()
                        && p.port() == url.port()
                        && segments_under(url.path(), p.path())
                })
            });
            return match allowed {
                true => Ok(()),
                false => refuse("is refused: URLs need --allow-url naming their prefix"),
            };
        }
        let Ok(full) = url.to_file_path() else {
            return refuse("is not a local path");
        };
        // The deepest ancestor that exists, with symlinks resolved: what the
        // path really reaches (the rest is created inside it).
        let real = full
            .ancestors()
            .find_map(|a| a.canonicalize().ok())
            .unwrap_or_default();
        if real.starts_with(root) {
            Ok(())
        } else {
            refuse("is outside the server's root")
        }
    }
}

/// Whether URL path `path` is `prefix` or below it, segment by segment.
fn segments_under(path: &str, prefix: &str) -> bool {
    let seg = |p: &str| {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (p, pre) = (seg(path), seg(prefix));
    p.len() >= pre.len() && p[..pre.len()] == pre[..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(root: &Path, read_only: bool) -> Guard {
        Guard {
            root: Some(root.canonicalize().unwrap()),
            allow_urls: vec!["s3://ok-bucket/".into()],
            read_only,
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lake")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let g = guard(dir.path(), false);
        let table = |loc: &str| {
            g.check(&format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{loc}'"
            ))
        };
        let root = dir.path().canonicalize().unwrap();
        assert!(table("lake/").is_ok());
        assert!(table("new/folder/").is_ok(), "not there yet, but inside");
        assert!(table(&format!("{}/lake/", root.display())).is_ok());
        assert!(table(&format!("file://{}/lake/", root.display())).is_ok());
        assert!(table("s3://ok-bucket/lake/").is_ok());
        for bad in [
            "../x/",
            "lake/../../x",
            "escape/",
            "escape/sub/",
            "/etc/",
            "file:///etc/",
        ] {
            let e = table(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("LOCATION"), "{bad}: {e}");
        }
        assert!(
            table("s3://other/lake/")
                .unwrap_err()
                .contains("--allow-url")
        );
        let e = g.check("COPY (SELECT 1) TO '../out.parquet'").unwrap_err();
        assert!(e.contains("COPY"), "{e}");
        assert!(g.check("COPY (SELECT 1) TO 'out.parquet'").is_ok());
        assert!(
            g.check("EXPLAIN COPY (SELECT 1) TO '/tmp/x.parquet'")
                .is_err()
        );
    }

    #[test]
    fn read_only_refuses_writes_and_server_options() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path(), true);
        assert!(
            g.check("COPY (SELECT 1) TO 'out.parquet'")
                .unwrap_err()
                .contains("read-only")
        );
        assert!(
            g.check("INSERT INTO t VALUES (1)")
                .unwrap_err()
                .contains("read-only")
        );
        let e = g.check("SET lakecap.device = 'cpu'").unwrap_err();
        assert!(e.contains("lakecap.device"), "{e}");
        assert!(g.check("SET \"lakecap.device\" = 'cuda'").is_err());
        assert!(g.check("SET LAKECAP.DEVICE = 'cuda'").is_err());
        assert!(g.check("RESET lakecap.device").is_err());
        assert!(g.check("PREPARE p AS INSERT INTO t VALUES (1)").is_err());
        assert!(g.check("SET lakecap.on_error = 'fail'").is_ok());
        assert!(
            g.check("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'x/'")
                .is_ok()
        );
        assert!(g.check("SELECT 1; SELECT 2").is_ok());
    }
}
