//! Choosing and constructing a kernels backend for a device: the only
//! place in the crate that does.
//!
//! A model worker owns its backend (`on_device!`): its CUDA streams, cuBLAS
//! handle and activation budget live on the worker's thread for the model's
//! lifetime. Work that runs on the caller's thread (semantic dedup) borrows a
//! backend shared per device (`with_shared_backend!`), so a call does not pay
//! for a CUDA context, kernel modules and a cuBLAS handle of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use lakecap_kernels::Cuda;
use lakecap_kernels::cuda::Precision;

use super::registry::once_per_key;
use crate::error::Result;

/// Runs `build` with `be` owning a new backend for `device` (on the worker
/// thread that will keep it); `?` returns a failed CUDA start.
macro_rules! on_device {
    ($device:expr, |$be:ident| $build:expr) => {
        match $device {
            $crate::runtime::Device::Cpu(precision) => {
                let $be = lakecap_kernels::Cpu { precision };
                $build
            }
            $crate::runtime::Device::Cuda(n, precision) => {
                let $be = lakecap_kernels::Cuda::new(n, precision)?;
                $build
            }
        }
    };
}
pub(crate) use on_device;

/// Runs `body` with `be` borrowing the backend of `device` that the process
/// shares (the CPU, or `shared_cuda`); `?` returns a failed CUDA start.
macro_rules! with_shared_backend {
    ($device:expr, |$be:ident| $body:expr) => {
        match $device {
            $crate::runtime::Device::Cpu(precision) => {
                let $be = &lakecap_kernels::Cpu { precision };
                $body
            }
            $crate::runtime::Device::Cuda(n, precision) => {
                let shared = $crate::runtime::shared_cuda(n, precision)?;
                let $be = &*shared;
                $body
            }
        }
    };
}
pub(crate) use with_shared_backend;

/// Started CUDA backends by (ordinal, precision).
type Shared = Mutex<HashMap<(usize, Precision), Arc<Cuda>>>;

/// The process-wide backend of CUDA device `ordinal` at `precision`, started
/// on first use (a failed start is not kept, so a later call tries again).
pub(crate) fn shared_cuda(ordinal: usize, precision: Precision) -> Result<Arc<Cuda>> {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    once_per_key(
        SHARED.get_or_init(Default::default),
        (ordinal, precision),
        || Ok(Cuda::new(ordinal, precision)?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_backend_is_started_once() {
        if let Some(why) = lakecap_kernels::cuda::unavailable_reason() {
            eprintln!("skipping: {why}");
            return;
        }
        let a = shared_cuda(0, Precision::F32).unwrap();
        let b = shared_cuda(0, Precision::F32).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
