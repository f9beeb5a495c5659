//! The CUDA backend: cudarc with dynamic loading (the binary runs with no CUDA
//! installed), kernels in `kernels/cu/` compiled by NVRTC for the device's
//! architecture when the first backend is created (kept for the process),
//! GEMMs through cuBLAS.
//!
//! - [`Cuda`] owns the context, a compute stream, a copy stream for uploads
//!   from pinned staging memory, the cuBLAS handle and the compiled kernels.
//!   Device memory comes from the driver's stream-ordered pool, kept as a
//!   caching allocator (freed blocks are reused, not returned to the driver).
//! - [`CudaTensor`] (`tensor.rs`) holds f32, f16 or bf16 storage. [`Precision`]
//!   decides what weights are stored as: half-precision weight matrices run
//!   cuBLAS GEMMs in f16/bf16 with f32 accumulation; activations, norms,
//!   softmax and attention stay f32.
//! - `ops/` implements [`Backend`](crate::Backend) on top, one file per op
//!   family as in `kernels/cu/` (`norm`, `attention`, `elementwise`, `rope`,
//!   `cast`, `topk`, `image`: resize, crop, normalise and patches on the
//!   device, `conv`: im2col and pooling) plus `gemm` for cuBLAS; the launch helpers they share
//!   (`grid`, `per_row`, device allocation) are here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig};
use cudarc::driver::{PinnedHostSlice, sys as drv};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::backend::{KernelError, Result};

mod ops;
mod tensor;

pub use tensor::{CudaKvCache, CudaTensor, Dtype};

/// Kernel sources by op family; each is compiled with [`COMMON`] prepended.
pub const FAMILIES: [(&str, &str); 8] = [
    ("norm", include_str!("../../cu/norm.cu")),
    ("attention", include_str!("../../cu/attention.cu")),
    ("elementwise", include_str!("../../cu/elementwise.cu")),
    ("rope", include_str!("../../cu/rope.cu")),
    ("cast", include_str!("../../cu/cast.cu")),
    ("topk", include_str!("../../cu/topk.cu")),
    ("image", include_str!("../../cu/image.cu")),
    ("conv", include_str!("../../cu/conv.cu")),
];
pub const COMMON: &str = include_str!("../../cu/common.cuh");

/// Every kernel the backend launches (each must be an entry of some family).
pub const KERNELS: [&str; 26] = [
    "layer_norm_f32",
    "rms_norm_f32",
    "act_mul_f32",
    "rope_f32",
    "kv_store_f32",
    "kv_attention_f32",
    "l2_normalize_f32",
    "attention_f32",
    "flash_attention_f32",
    "add_f32",
    "activation_f32",
    "embedding_f32",
    "prepend_row_f32",
    "masked_mean_f32",
    "widen_f16",
    "widen_bf16",
    "narrow_f16",
    "narrow_bf16",
    "embedding_f16",
    "embedding_bf16",
    "top_k_f32",
    "resample_h_u8",
    "resample_v_u8",
    "patchify_u8",
    "im2col_f32",
    "pool2d_f32",
];

/// Compiles one family to PTX for `arch` (e.g. `compute_90`).
pub fn compile_family(src: &str, arch: &'static str) -> std::result::Result<String, String> {
    let opts = CompileOptions {
        arch: Some(arch),
        options: vec!["-default-device".into(), "--std=c++17".into()],
        ..Default::default()
    };
    compile_ptx_with_opts(format!("{COMMON}\n{src}"), opts)
        .map(|p| p.to_src().to_string())
        .map_err(|e| format!("{e:?}"))
}

/// PTX of every family for `arch`, compiled at first use and kept for the
/// process: NVRTC takes seconds, and every model load opens a backend.
fn family_ptx(arch: &'static str) -> Result<Arc<Vec<String>>> {
    /// PTX of every family, by architecture.
    type Compiled = HashMap<&'static str, Arc<Vec<String>>>;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ptx) = cache.get(arch) {
        return Ok(Arc::clone(ptx));
    }
    let ptx = FAMILIES
        .iter()
        .map(|(family, src)| {
            compile_family(src, arch)
                .map_err(|e| KernelError::Device(format!("compiling {family}.cu: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let ptx = Arc::new(ptx);
    cache.insert(arch, Arc::clone(&ptx));
    Ok(ptx)
}

/// Whether NVRTC can be loaded (enough to compile kernels; no GPU needed).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library.
    std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// Why CUDA cannot be used here, or `None` when it can (driver and NVRTC
/// libraries present). cudarc panics on a missing library, so look first.
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: these only try to dlopen the libraries.
    let driver = std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() })
        .unwrap_or(false);
    if !driver {
        return Some("no CUDA driver (libcuda) found".into());
    }
    let nvrtc = std::panic::catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
        .unwrap_or(false);
    if !nvrtc {
        return Some("no NVRTC library (libnvrtc) found".into());
    }
    let blas = std::panic::catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() })
        .unwrap_or(false);
    if !blas {
        return Some("no cuBLAS library (libcublas) found".into());
    }
    None
}

pub(crate) fn dev<E: std::fmt::Debug>(e: E) -> KernelError {
    KernelError::Device(format!("{e:?}"))
}

/// What weights are stored and multiplied in (`SET lakecap.precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Weights keep the checkpoint's dtype: f16/bf16 files run half-precision
    /// GEMMs (f32 accumulation), f32 files TF32 tensor-core GEMMs.
    #[default]
    Auto,
    /// f32 storage and f32 GEMMs without TF32: parity with the CPU.
    F32,
    /// Weight matrices converted to f16 at load (as PyTorch `model.half()`).
    F16,
    /// Weight matrices converted to bf16 at load.
    Bf16,
}

impl std::str::FromStr for Precision {
    /// The refusal, naming the accepted values (a SQL error shows it as is).
    type Err = String;

    /// Parses `auto`, `f32`, `f16` or `bf16` (and their long names).
    fn from_str(s: &str) -> std::result::Result<Precision, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Precision::Auto,
            "f32" | "fp32" | "float32" => Precision::F32,
            "f16" | "fp16" | "float16" | "half" => Precision::F16,
            "bf16" | "bfloat16" => Precision::Bf16,
            _ => {
                return Err(format!(
                    "precision `{s}`: use 'auto', 'f32', 'f16' or 'bf16'"
                ));
            }
        })
    }
}

/// Uploads at least this large go through pinned staging memory on the copy
/// stream (smaller ones are cheaper as a plain copy).
const STAGE_MIN_BYTES: usize = 1 << 20;

/// Share of the device memory free at start that one activation may take:
/// models split batches into passes that fit (weights, the KV cache and the
/// other live activations take the rest).
const ACTIVATION_SHARE: usize = 16;

pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Host-to-device copies of large inputs, overlapping compute.
    copy: Arc<CudaStream>,
    /// Page-locked staging for those copies, reused while the size repeats.
    staging: Mutex<Option<PinnedHostSlice<f32>>>,
    blas: CudaBlas,
    funcs: HashMap<&'static str, CudaFunction>,
    precision: Precision,
    pub(crate) activation_budget: usize,
    name: String,
}

pub(crate) fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One 256-thread block per row, for the row-wise reductions (norms, top-k).
pub(crate) fn per_row(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The NVRTC target for a compute capability.
fn arch(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, _) => "compute_90",
        (10, _) => "compute_100",
        (12, _) => "compute_120",
        _ => "compute_75",
    }
}

impl Cuda {
    /// Opens device `ordinal` and compiles the kernels for its architecture.
    pub fn new(ordinal: usize, precision: Precision) -> Result<Cuda> {
        if let Some(why) = unavailable_reason() {
            return Err(KernelError::Device(why));
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| KernelError::Device("CUDA initialisation panicked".into()))?
            .map_err(dev)?;
        let (major, minor) = ctx.compute_capability().map_err(dev)?;
        let stream = ctx.default_stream();
        let copy = ctx.new_stream().map_err(dev)?;
        let blas = CudaBlas::new(stream.clone()).map_err(dev)?;
        if precision != Precision::F32 {
            // f32 GEMMs (weights of f32 checkpoints under `auto`) on TF32 tensor cores.
            // SAFETY: a valid handle and a defined math mode.
            unsafe {
                cudarc::cublas::sys::cublasSetMathMode(
                    *blas.handle(),
                    cudarc::cublas::sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
                )
            }
            .result()
            .map_err(dev)?;
        }
        if ctx.has_async_alloc() {
            keep_freed_memory(&ctx)?;
        }
        let mut funcs = HashMap::new();
        for ptx in family_ptx(arch(major, minor))?.iter() {
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx.clone()))
                .map_err(dev)?;
            for k in KERNELS {
                if let Ok(f) = module.load_function(k) {
                    funcs.insert(k, f);
                }
            }
        }
        if let Some(k) = KERNELS.iter().find(|k| !funcs.contains_key(*k)) {
            return Err(KernelError::Device(format!("kernel {k} is in no family")));
        }
        let (free, _) = ctx.mem_get_info().map_err(dev)?;
        let name = format!(
            "cuda:{ordinal} ({}, sm_{major}{minor}, {precision:?})",
            ctx.name().unwrap_or_default()
        );
        Ok(Cuda {
            ctx,
            stream,
            copy,
            staging: Mutex::new(None),
            blas,
            funcs,
            precision,
            activation_budget: (free / ACTIVATION_SHARE).max(64 << 20),
            name,
        })
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(dev)
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(dev)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub(crate) fn f(&self, name: &str) -> &CudaFunction {
        &self.funcs[name]
    }

    /// Uninitialised device memory for `n` values (at least one).
    pub(crate) fn out<T: cudarc::driver::DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        // SAFETY: every kernel writes all n outputs before they are read.
        unsafe { self.stream.alloc::<T>(n.max(1)) }.map_err(dev)
    }

    pub(crate) fn ints(&self, v: &[i32]) -> Result<CudaSlice<i32>> {
        self.stream.clone_htod(v).map_err(dev)
    }

    pub(crate) fn uints(&self, v: &[u32]) -> Result<CudaSlice<u32>> {
        self.stream.clone_htod(v).map_err(dev)
    }

    /// Copies f32 host data to the device. Large inputs (image batches) go
    /// through pinned memory on the copy stream, so the call returns at once
    /// and the transfer overlaps kernels already queued on the compute stream;
    /// the tensor's first use waits for it (cudarc's event tracking).
    pub(crate) fn upload_f32(&self, v: &[f32]) -> Result<CudaSlice<f32>> {
        if v.is_empty() {
            return self.out(1);
        }
        if v.len() * 4 < STAGE_MIN_BYTES {
            return self.stream.clone_htod(v).map_err(dev);
        }
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if staging.as_ref().is_none_or(|s| s.len() != v.len()) {
            // SAFETY: filled below before any copy reads it.
            *staging = Some(unsafe { self.ctx.alloc_pinned::<f32>(v.len()) }.map_err(dev)?);
        }
        let pinned = staging.as_mut().expect("allocated above");
        // Waits for the previous copy out of this buffer to finish.
        pinned.as_mut_slice().map_err(dev)?.copy_from_slice(v);
        let mut dst = unsafe { self.copy.alloc::<f32>(v.len()) }.map_err(dev)?;
        self.copy.memcpy_htod(&*pinned, &mut dst).map_err(dev)?;
        Ok(dst)
    }
}

/// Makes the device's stream-ordered memory pool a caching allocator: by
/// default it returns freed memory to the driver at every synchronisation,
/// and models free and reallocate the same activation sizes every batch.
fn keep_freed_memory(ctx: &CudaContext) -> Result<()> {
    let mut pool: drv::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: a valid device; the attribute takes a u64.
    unsafe {
        drv::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .map_err(dev)?;
        drv::cuMemPoolSetAttribute(
            pool,
            drv::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .result()
        .map_err(dev)
    }
}
