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

use std::path::{Component, Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{Set, Statement as Sql};

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
    /// `Ok` when every statement of `sql` may run, else why not. SQL that
    /// does not parse is left to the engine, which reports it the same way
    /// as the CLI.
    pub fn check(&self, sql: &str) -> Result<(), String> {
        let Ok(statements) = DFParser::parse_sql(sql) else {
            return Ok(());
        };
        statements.iter().try_for_each(|s| self.statement(s))
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
            Statement::Reset(_) => Ok(()),
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
            Sql::Set(Set::SingleAssignment { variable, .. }) if self.read_only => {
                let name = variable.to_string().to_ascii_lowercase();
                match SERVER_LEVEL.contains(&name.as_str()) {
                    true => Err(format!(
                        "the server is read-only: {name} is a server-level option"
                    )),
                    false => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// A LOCATION or COPY target.
    fn path(&self, location: &str, what: &str) -> Result<(), String> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let path = match location.split_once("://") {
            Some(("file", rest)) => rest,
            Some(_)
                if self
                    .allow_urls
                    .iter()
                    .any(|p| location.starts_with(p.as_str())) =>
            {
                return Ok(());
            }
            Some(_) => {
                return Err(format!(
                    "{what} '{location}': URLs are refused unless --allow-url names their prefix"
                ));
            }
            None => location,
        };
        let refuse = |why: &str| Err(format!("{what} '{location}' {why}"));
        let p = Path::new(path);
        if p.components().any(|c| c == Component::ParentDir) {
            return refuse("uses '..'; paths must stay inside the server's root");
        }
        let full = root.join(p);
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
        assert!(g.check("SET lakecap.on_error = 'fail'").is_ok());
        assert!(
            g.check("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'x/'")
                .is_ok()
        );
        assert!(g.check("SELECT 1; SELECT 2").is_ok());
    }
}
