//! `lakecap.*` options as a cluster process receives them: Ballista applies a
//! client's settings key by key and only logs (at debug level) a key that
//! fails to apply. [`AppliedOptions`] stands in for [`LakecapOptions`] in a
//! scheduler's or executor's session config, records what it refused, and
//! [`refused_options`] turns that into a query error where the process runs
//! the query.
//!
//! Functions keep reading `LakecapOptions`: the wrapper hands the options
//! out as itself (`as_any`), so `extensions.get::<LakecapOptions>()` works
//! unchanged.

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::common::{Result, config_err};

use super::options::LakecapOptions;

/// The option under which a process's refusals travel (never a real one).
const REFUSED: &str = "refused";
const REFUSED_KEY: &str = "lakecap.refused";

/// [`LakecapOptions`] that accept every setting and remember the ones they
/// could not apply; a device given to the process wins over the client's.
#[derive(Debug, Clone, Default)]
pub struct AppliedOptions {
    options: LakecapOptions,
    refused: Vec<String>,
    device: Option<String>,
}

impl AppliedOptions {
    /// Options for a process whose models run on `device` (`--device`),
    /// whatever `lakecap.device` a client sends.
    pub fn new(options: LakecapOptions, device: Option<&str>) -> Result<Self> {
        let mut options = options;
        if let Some(d) = device {
            options.set("device", d)?;
        }
        Ok(AppliedOptions {
            options,
            refused: Vec::new(),
            device: device.map(str::to_string),
        })
    }
}

impl ConfigExtension for AppliedOptions {
    const PREFIX: &'static str = LakecapOptions::PREFIX;
}

impl ExtensionOptions for AppliedOptions {
    fn as_any(&self) -> &dyn Any {
        &self.options
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.options
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if key == "device" && self.device.is_some() {
            return Ok(());
        }
        if key == REFUSED {
            // Another process's refusals, forwarded with its settings.
            self.refused.push(value.to_string());
            return Ok(());
        }
        if let Err(e) = self.options.set(key, value) {
            self.refused.push(format!(
                "lakecap.{key} = '{value}': {}",
                e.strip_backtrace()
            ));
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let mut entries = self.options.entries();
        if !self.refused.is_empty() {
            entries.push(ConfigEntry {
                key: REFUSED_KEY.to_string(),
                value: Some(self.refused.join("; ")),
                description: "settings this process could not apply",
            });
        }
        entries
    }
}

/// An error naming the `lakecap.*` settings that `process` could not apply,
/// if any: a client and a process of different lakecap versions, say.
pub fn refused_options(config: &ConfigOptions, process: &str) -> Result<()> {
    let refused = config
        .extensions
        .iter()
        .filter(|(prefix, _)| *prefix == LakecapOptions::PREFIX)
        .flat_map(|(_, ext)| ext.entries())
        .find(|e| e.key == REFUSED_KEY)
        .and_then(|e| e.value);
    match refused {
        Some(r) => config_err!(
            "{process} could not apply these settings (is it running the same lakecap version as the client?): {r}"
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionConfig;

    fn config(device: Option<&str>) -> SessionConfig {
        SessionConfig::new()
            .with_option_extension(AppliedOptions::new(LakecapOptions::default(), device).unwrap())
    }

    #[test]
    fn functions_see_the_options_and_refusals_become_errors() {
        let mut c = config(None);
        c.options_mut().set("lakecap.on_error", "fail").unwrap();
        assert_eq!(
            LakecapOptions::from_config(c.options())
                .on_error
                .to_string(),
            "fail"
        );
        refused_options(c.options(), "executor e1").unwrap();
        // Keys and values this process does not know are accepted, then reported.
        c.options_mut().set("lakecap.no_such_option", "1").unwrap();
        c.options_mut().set("lakecap.precision", "f8").unwrap();
        let e = refused_options(c.options(), "executor e1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("executor e1 could not apply"), "{e}");
        assert!(e.contains("lakecap.no_such_option = '1'"), "{e}");
        assert!(e.contains("lakecap.precision = 'f8'"), "{e}");
        // Refusals travel with the settings to the next process.
        let mut next = config(None);
        for entry in c.options().entries() {
            if let (true, Some(v)) = (entry.key.starts_with("lakecap."), entry.value) {
                // Ballista applies a client's settings this way.
                next.options_mut().set(&entry.key, &v).unwrap();
            }
        }
        let e = refused_options(next.options(), "executor e2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lakecap.no_such_option = '1'"), "{e}");
    }

    #[test]
    fn the_process_device_wins() {
        let mut c = config(Some("cpu"));
        c.options_mut().set("lakecap.device", "cuda:3").unwrap();
        assert_eq!(
            LakecapOptions::from_config(c.options()).device.to_string(),
            "cpu"
        );
        refused_options(c.options(), "executor").unwrap();
    }
}
