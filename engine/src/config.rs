//! Session options from `lakecap.toml` and `LAKECAP_*` environment variables.
//!
//! Precedence, lowest first: built-in defaults, the config file, the
//! environment, then `SET` statements in the session itself.
//!
//! ```toml
//! cluster = "df://head:50050" # run queries on a lakecap cluster (optional)
//! on_error = "fail"          # any lakecap.* option, without the prefix
//! max_pixels = 50000000
//! [datafusion]               # any DataFusion option, without the prefix
//! execution.batch_size = 4096
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::config::ExtensionOptions;
use datafusion::prelude::SessionConfig;
use lakecap_udfs::LakecapOptions;

/// Applies a `lakecap.toml` file to `config`; returns its `cluster`, if any.
pub fn apply_file(config: &mut SessionConfig, path: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut cluster = None;
    for (key, value) in &table {
        if key == "cluster" {
            let Some(url) = value.as_str() else {
                bail!(
                    "{}: cluster must be a string (df://HOST:PORT)",
                    path.display()
                )
            };
            cluster = Some(url.to_string());
        } else if key == "datafusion" {
            let Some(df) = value.as_table() else {
                bail!("{}: [datafusion] must be a table", path.display())
            };
            for (k, v) in flatten(df, "") {
                config
                    .options_mut()
                    .set(&format!("datafusion.{k}"), &v)
                    .with_context(|| format!("{}: datafusion.{k}", path.display()))?;
            }
        } else {
            for (k, v) in flatten_one(key, value) {
                config
                    .options_mut()
                    .set(&format!("lakecap.{k}"), &v)
                    .with_context(|| format!("{}: option '{k}'", path.display()))?;
            }
        }
    }
    Ok(cluster)
}

fn flatten(table: &toml::Table, prefix: &str) -> Vec<(String, String)> {
    table
        .iter()
        .flat_map(|(k, v)| flatten_one(&format!("{prefix}{k}"), v))
        .collect()
}

fn flatten_one(key: &str, value: &toml::Value) -> Vec<(String, String)> {
    match value {
        toml::Value::Table(t) => flatten(t, &format!("{key}.")),
        toml::Value::String(s) => vec![(key.to_string(), s.clone())],
        other => vec![(key.to_string(), other.to_string())],
    }
}

/// Applies `LAKECAP_<OPTION>` variables (e.g. `LAKECAP_ON_ERROR=fail`,
/// `LAKECAP_LLM_MODEL=...` for `lakecap.llm.model`) from `vars`.
pub fn apply_env(
    config: &mut SessionConfig,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<()> {
    let known: Vec<String> = LakecapOptions::default()
        .entries()
        .into_iter()
        .filter_map(|e| e.key.strip_prefix("lakecap.").map(str::to_string))
        .collect();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("LAKECAP_") else {
            continue;
        };
        // LAKECAP_LLM_MODEL names lakecap.llm.model.
        let flat = rest.to_ascii_lowercase();
        if let Some(key) = known.iter().find(|k| k.replace('.', "_") == flat) {
            config
                .options_mut()
                .set(&format!("lakecap.{key}"), &value)
                .with_context(|| format!("environment variable {name}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecap_udfs::OnError;

    fn opts(c: &SessionConfig) -> LakecapOptions {
        LakecapOptions::from_config(c.options())
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakecap.toml");
        std::fs::write(
            &path,
            "cluster = \"df://head:50050\"\non_error = \"fail\"\nmax_pixels = 1000\n[datafusion]\nexecution.batch_size = 123\n",
        )
        .unwrap();
        let mut c = SessionConfig::new().with_option_extension(LakecapOptions::default());
        assert_eq!(
            apply_file(&mut c, &path).unwrap().as_deref(),
            Some("df://head:50050")
        );
        assert_eq!(opts(&c).on_error, OnError::Fail);
        assert_eq!(opts(&c).max_pixels, 1000);
        assert_eq!(c.batch_size(), 123);
        apply_env(
            &mut c,
            [
                ("LAKECAP_MAX_PIXELS".to_string(), "77".to_string()),
                ("PATH".into(), "x".into()),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(opts(&c).max_pixels, 77);
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = SessionConfig::new().with_option_extension(LakecapOptions::default());
        let err = apply_env(
            &mut c,
            [("LAKECAP_ON_ERROR".to_string(), "maybe".to_string())].into_iter(),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("LAKECAP_ON_ERROR") && msg.contains("'null' or 'fail'"),
            "{msg}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakecap.toml");
        std::fs::write(&path, "no_such_option = 1\n").unwrap();
        assert!(format!("{:#}", apply_file(&mut c, &path).unwrap_err()).contains("no_such_option"));
    }
}
