//! `lakecap.*` session options, a DataFusion config extension.

use std::fmt;
use std::str::FromStr;

use datafusion::common::config::{ConfigExtension, ConfigField, Visit};
use datafusion::common::{DataFusionError, Result, extensions_options};
use datafusion::config::ConfigOptions;
use lakecap_models::image::DecodeLimits;

/// What a function does with a row it cannot process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// NULL for that row and a counted warning.
    #[default]
    Null,
    /// Fail the query with an error naming the function, column and row.
    Fail,
}

impl FromStr for OnError {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "null" => Ok(OnError::Null),
            "fail" => Ok(OnError::Fail),
            other => Err(DataFusionError::Configuration(format!(
                "lakecap.on_error must be 'null' or 'fail', got '{other}'"
            ))),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Null => "null",
            OnError::Fail => "fail",
        })
    }
}

impl ConfigField for OnError {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        *self = value.parse()?;
        Ok(())
    }
}

extensions_options! {
    /// lakecap's options, set with `SET lakecap.<name> = <value>`, in `lakecap.toml`
    /// or as `LAKECAP_<NAME>` environment variables.
    pub struct LakecapOptions {
        /// 'null': a row a function cannot process gives NULL and a counted warning; 'fail': the query fails.
        pub on_error: OnError, default = OnError::Null
        /// Largest image (width x height) any function decodes; larger headers are refused unread.
        pub max_pixels: u64, default = DecodeLimits::default().max_pixels
        /// Largest encoded image, in bytes, any function accepts.
        pub max_image_bytes: u64, default = DecodeLimits::default().max_bytes
    }
}

impl ConfigExtension for LakecapOptions {
    const PREFIX: &'static str = "lakecap";
}

impl LakecapOptions {
    /// The options of a running query (defaults when the extension is not registered).
    pub fn from_config(config: &ConfigOptions) -> LakecapOptions {
        config
            .extensions
            .get::<LakecapOptions>()
            .cloned()
            .unwrap_or_default()
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
            max_bytes: self.max_image_bytes,
        }
    }
}
