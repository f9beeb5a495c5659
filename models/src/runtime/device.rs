//! Where a model runs: the CPU, or a CUDA device and the [`Precision`] its
//! weights are kept in, parsed from the `lakecap.device` and
//! `lakecap.precision` settings (the errors name the accepted values).

use std::str::FromStr;

use lakecap_kernels::cuda::Precision;

use crate::error::{ModelError, Result};

/// Where a model runs, the CPU or a CUDA device, and the precision it
/// multiplies in (`lakecap.precision`: on a GPU what weights are kept in; on
/// the CPU, `f32` keeps every product's x in f32 and `bf16` keeps weight
/// matrices in bf16, see [`lakecap_kernels::Cpu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu(Precision),
    Cuda(usize, Precision),
}

impl Device {
    /// The CPU at [`Precision::Auto`].
    pub const CPU: Device = Device::Cpu(Precision::Auto);

    /// The CPU at `precision`: `F32`, `Bf16` (weight matrices converted to
    /// bf16 at load) or `Auto` (`F16` runs as `Auto` there, so it is the same
    /// device and loads a model once).
    pub fn cpu(precision: Precision) -> Device {
        match precision {
            Precision::F32 | Precision::Bf16 => Device::Cpu(precision),
            _ => Device::CPU,
        }
    }

    /// Parses `auto`, `cpu`, `cuda` or `cuda:N` (CUDA with [`Precision::Auto`]).
    /// `auto` is CUDA device 0 when the driver, NVRTC and cuBLAS can be
    /// loaded, else the CPU, and then also returns why.
    pub fn parse(s: &str) -> Result<(Device, Option<String>)> {
        let s = s.trim().to_ascii_lowercase();
        let cuda = |n| Device::Cuda(n, Precision::Auto);
        Ok(match s.as_str() {
            "cpu" => (Device::CPU, None),
            "cuda" => (cuda(0), None),
            "auto" => match lakecap_kernels::cuda::unavailable_reason() {
                None => (cuda(0), None),
                Some(why) => (Device::CPU, Some(why)),
            },
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => (cuda(n), None),
                None => {
                    return Err(ModelError::Unsupported(format!(
                        "device `{other}`: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                    )));
                }
            },
        })
    }

    /// This device at `precision` (`auto`, `f32`, `f16`, `bf16`).
    pub fn with_precision(self, precision: &str) -> Result<Device> {
        let p = Precision::from_str(precision).map_err(ModelError::Unsupported)?;
        Ok(match self {
            Device::Cpu(_) => Device::cpu(p),
            Device::Cuda(n, _) => Device::Cuda(n, p),
        })
    }
}

impl FromStr for Device {
    type Err = ModelError;

    /// [`Device::parse`] without the reason `auto` fell back to the CPU.
    fn from_str(s: &str) -> Result<Device> {
        Device::parse(s).map(|(device, _)| device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_and_names_the_accepted_values() {
        let cuda = |n| Device::Cuda(n, Precision::Auto);
        assert_eq!(" CPU ".parse::<Device>().unwrap(), Device::CPU);
        assert_eq!("cuda".parse::<Device>().unwrap(), cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), cuda(3));
        let e = "tpu".parse::<Device>().unwrap_err().to_string();
        assert!(
            e.contains("device `tpu`: use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
            "{e}"
        );
        assert!("cuda:x".parse::<Device>().is_err());

        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("half".parse::<Precision>(), Ok(Precision::F16));
        assert_eq!(
            cuda(1).with_precision("f32").unwrap(),
            Device::Cuda(1, Precision::F32)
        );
        assert_eq!(
            Device::CPU.with_precision("f32").unwrap(),
            Device::Cpu(Precision::F32)
        );
        assert_eq!(
            Device::CPU.with_precision("bf16").unwrap(),
            Device::Cpu(Precision::Bf16)
        );
        assert_eq!(Device::CPU.with_precision("f16").unwrap(), Device::CPU);
        let e = Device::CPU.with_precision("f8").unwrap_err().to_string();
        assert!(
            e.contains("precision `f8`: use 'auto', 'f32', 'f16' or 'bf16'"),
            "{e}"
        );
    }
}
