//! Job files: what a refresh reads, how it transforms, where it writes.
//!
//! ```toml
//! name = "curate"            # default: the file's stem
//! version = 1                # bump when the transform changes: everything is reprocessed
//! key = "key"                # unique row key, in the source and in the output
//! sql = "SELECT key, alt, phash(img) AS phash FROM lake WHERE image_error(img) IS NULL"
//! # or: sql_file = "sql/my_transform.sql"
//! files_per_commit = 64      # source files per transaction
//!
//! [source.lake]              # the name the SQL reads
//! location = "lake/"         # path (relative to this file) or s3:// gs:// az:// URL
//!
//! [output]
//! location = "out/curated"
//! format = "delta"           # or "parquet" (committed through a manifest)
//!
//! [options]                  # lakecap.* session options, without the prefix
//! on_error = "null"
//! ```
//!
//! A job may name several sources; exactly one is read incrementally (the only
//! one, or the one with `incremental = true`), the others are registered whole
//! (lookup tables for joins).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    name: Option<String>,
    version: Option<i64>,
    key: String,
    sql: Option<String>,
    sql_file: Option<PathBuf>,
    files_per_commit: Option<usize>,
    source: BTreeMap<String, SourceFile>,
    output: OutputFile,
    #[serde(default)]
    options: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    location: String,
    format: Option<String>,
    #[serde(default)]
    incremental: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputFile {
    location: String,
    format: Option<String>,
}

/// How the output is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A Delta Lake table (delta-rs): every commit is one Delta transaction.
    Delta,
    /// Parquet files made visible by a manifest entry per commit.
    Parquet,
}

/// A table the job reads.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    /// A URL (`file:///…/`, `s3://…/`) ending in `/`.
    pub url: String,
}

/// A parsed, validated job file.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub version: i64,
    pub key: String,
    pub sql: String,
    pub files_per_commit: usize,
    /// The source read incrementally.
    pub source: Source,
    /// Sources registered whole.
    pub lookups: Vec<Source>,
    pub output_url: String,
    pub output_format: OutputFormat,
    /// `lakecap.*` options (without the prefix) as strings.
    pub options: Vec<(String, String)>,
}

const DEFAULT_FILES_PER_COMMIT: usize = 64;

impl Job {
    /// Reads and checks `path`; every error names the file and the field.
    pub fn load(path: &Path) -> Result<Job> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read job file {}", path.display()))?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "job".into());
        Self::parse(&text, &base, &stem).with_context(|| format!("job file {}", path.display()))
    }

    /// Parses job TOML; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path, default_name: &str) -> Result<Job> {
        let file: JobFile = toml::from_str(text).context("invalid job file")?;
        let name = file.name.unwrap_or_else(|| default_name.to_string());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("name '{name}': use letters, digits, '_' and '-'");
        }
        let sql = match (file.sql, file.sql_file) {
            (Some(s), None) => s,
            (None, Some(f)) => {
                let p = base.join(&f);
                std::fs::read_to_string(&p)
                    .with_context(|| format!("sql_file: cannot read {}", p.display()))?
            }
            (Some(_), Some(_)) => bail!("give either sql or sql_file, not both"),
            (None, None) => bail!("missing the transform: add sql = \"SELECT …\" or sql_file"),
        };
        let sql = sql.trim().trim_end_matches(';').trim().to_string();
        if sql.is_empty() {
            bail!("sql is empty");
        }
        if file.key.trim().is_empty() {
            bail!("key is empty");
        }
        let files_per_commit = file.files_per_commit.unwrap_or(DEFAULT_FILES_PER_COMMIT);
        if files_per_commit == 0 {
            bail!("files_per_commit must be at least 1");
        }
        if file.source.is_empty() {
            bail!("no source: add a [source.NAME] table with a location");
        }
        let incremental: Vec<&String> = if file.source.len() == 1 {
            file.source.keys().collect()
        } else {
            file.source
                .iter()
                .filter(|(_, s)| s.incremental)
                .map(|(n, _)| n)
                .collect()
        };
        let [driving] = incremental.as_slice() else {
            bail!(
                "{} sources: mark exactly one with incremental = true (found {})",
                file.source.len(),
                incremental.len()
            );
        };
        let driving = (*driving).clone();
        let mut source = None;
        let mut lookups = Vec::new();
        for (n, s) in &file.source {
            if let Some(f) = &s.format
                && f != "parquet"
            {
                bail!("source.{n}: format '{f}' is not supported (parquet)");
            }
            let src = Source {
                name: n.clone(),
                url: location_url(&s.location, base)
                    .with_context(|| format!("source.{n}.location"))?,
            };
            if *n == driving {
                source = Some(src);
            } else {
                lookups.push(src);
            }
        }
        let output_format = match file.output.format.as_deref() {
            None | Some("delta") => OutputFormat::Delta,
            Some("parquet") => OutputFormat::Parquet,
            Some(f) => bail!("output.format '{f}': use 'delta' or 'parquet'"),
        };
        let output_url = location_url(&file.output.location, base).context("output.location")?;
        let options = file
            .options
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        Ok(Job {
            name,
            version: file.version.unwrap_or(1),
            key: file.key,
            sql,
            files_per_commit,
            source: source.expect("driving source is one of the sources"),
            lookups,
            output_url,
            output_format,
            options,
        })
    }
}

/// A location as a directory URL: URLs are kept, paths are made absolute
/// against `base` (the directory need not exist yet).
pub fn location_url(location: &str, base: &Path) -> Result<String> {
    if location.trim().is_empty() {
        bail!("location is empty");
    }
    let mut url = if location.contains("://") {
        url::Url::parse(location)
            .with_context(|| format!("'{location}' is not a valid URL"))?
            .to_string()
    } else {
        // Lexically, so `../lake` works before the directory exists.
        let mut p = PathBuf::new();
        for c in base.join(location).components() {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                std::path::Component::CurDir => {}
                c => p.push(c),
            }
        }
        url::Url::from_directory_path(&p)
            .map_err(|_| anyhow::anyhow!("'{}' is not an absolute path", p.display()))?
            .to_string()
    };
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Job> {
        Job::parse(s, Path::new("/jobs"), "nightly")
    }

    #[test]
    fn parses_a_job_and_resolves_paths() {
        let j = parse(
            "key = 'key'\nsql = 'SELECT key FROM lake;'\n[source.lake]\nlocation = '../lake'\n\
             [output]\nlocation = 's3://bucket/out'\n[options]\non_error = 'null'\nbatch_size = 8\n",
        )
        .unwrap();
        assert_eq!(j.name, "nightly");
        assert_eq!(j.version, 1);
        assert_eq!(j.sql, "SELECT key FROM lake");
        assert_eq!(j.source.url, "file:///lake/");
        assert_eq!(j.output_url, "s3://bucket/out/");
        assert_eq!(j.output_format, OutputFormat::Delta);
        assert_eq!(
            j.options,
            vec![
                ("batch_size".into(), "8".into()),
                ("on_error".into(), "null".into())
            ]
        );
    }

    #[test]
    fn bad_job_files_say_what_is_wrong() {
        let cases = [
            (
                "key = 'k'\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'",
                "missing the transform",
            ),
            (
                "sql = 'SELECT 1'\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'",
                "missing field `key`",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\n[output]\nlocation = 'o'",
                "missing field `source`",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\n[source.a]\nlocation = 'x'\n[source.b]\nlocation = 'y'\n[output]\nlocation = 'o'",
                "mark exactly one with incremental = true",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'\nformat = 'csv'",
                "output.format 'csv'",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\nfiles_per_commit = 0\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'",
                "files_per_commit",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\ncolour = 'red'\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'",
                "unknown field `colour`",
            ),
            (
                "key = 'k'\nsql = 'SELECT 1'\nname = 'a b'\n[source.a]\nlocation = 'x'\n[output]\nlocation = 'o'",
                "name 'a b'",
            ),
            ("key = [", "invalid job file"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let err = format!(
            "{:#}",
            Job::load(Path::new("/nonexistent/job.toml")).unwrap_err()
        );
        assert!(
            err.contains("cannot read job file /nonexistent/job.toml"),
            "{err}"
        );
    }
}
