//! The CUDA backend: cudarc with dynamic loading (the binary runs with no CUDA
//! installed), kernels in `kernels/cu/` compiled by NVRTC for the device's
//! architecture when the backend is created, GEMMs through cuBLAS.
//!
//! Tensors are f32 on the device (half-precision checkpoints are widened on
//! upload); cuBLAS may use TF32 tensor cores ([`Cuda::new`] with `tf32`).

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use crate::backend::{Activation, Backend, HostData, KernelError, Mask, Pos, Result, Rope, check};

/// Kernel sources by op family; each is compiled with [`COMMON`] prepended.
pub const FAMILIES: [(&str, &str); 4] = [
    ("norm", include_str!("../../cu/norm.cu")),
    ("attention", include_str!("../../cu/attention.cu")),
    ("elementwise", include_str!("../../cu/elementwise.cu")),
    ("rope", include_str!("../../cu/rope.cu")),
];
pub const COMMON: &str = include_str!("../../cu/common.cuh");

const KERNELS: [&str; 14] = [
    "layer_norm_f32",
    "rms_norm_f32",
    "mul_f32",
    "rope_f32",
    "kv_store_f32",
    "kv_attention_f32",
    "l2_normalize_f32",
    "attention_f32",
    "add_f32",
    "activation_f32",
    "embedding_f32",
    "gather_rows_f32",
    "prepend_row_f32",
    "masked_mean_f32",
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

fn dev<E: std::fmt::Debug>(e: E) -> KernelError {
    KernelError::Device(format!("{e:?}"))
}

/// A tensor in device memory (f32, row-major).
pub struct CudaTensor {
    pub shape: Vec<usize>,
    pub buf: CudaSlice<f32>,
}

impl CudaTensor {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
    fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

/// A KV cache in device memory: `slots × capacity` rows of `width` for keys
/// and for values, allocated up front; `filled[slot]` counts the rows written
/// (checked on the host so that reads of unwritten rows fail as on the CPU).
pub struct CudaKvCache {
    width: usize,
    capacity: usize,
    k: CudaSlice<f32>,
    v: CudaSlice<f32>,
    filled: Vec<usize>,
}

/// Longest slot the cached-attention kernel's shared memory can score (48 KiB
/// per block, less the query row).
const MAX_CACHE_POSITIONS: usize = 11_000;

pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    funcs: HashMap<&'static str, CudaFunction>,
    name: String,
}

fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One 256-thread block per row, for the row-wise reductions (norms).
fn per_row(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Cuda {
    /// Opens device `ordinal` and compiles the kernels for its architecture.
    /// `tf32`: let cuBLAS use TF32 tensor cores for f32 GEMMs.
    pub fn new(ordinal: usize, tf32: bool) -> Result<Cuda> {
        if let Some(why) = unavailable_reason() {
            return Err(KernelError::Device(why));
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| KernelError::Device("CUDA initialisation panicked".into()))?
            .map_err(dev)?;
        let (major, minor) = ctx.compute_capability().map_err(dev)?;
        let arch: &'static str = match (major, minor) {
            (7, 5) => "compute_75",
            (8, 0) => "compute_80",
            (8, 6) => "compute_86",
            (8, 9) => "compute_89",
            (9, _) => "compute_90",
            (10, _) => "compute_100",
            (12, _) => "compute_120",
            _ => "compute_75",
        };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(dev)?;
        if tf32 {
            // SAFETY: a valid handle and a defined math mode.
            unsafe {
                cudarc::cublas::sys::cublasSetMathMode(
                    *blas.handle(),
                    cudarc::cublas::sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
                );
            }
        }
        let mut funcs = HashMap::new();
        for (family, src) in FAMILIES {
            let ptx = compile_family(src, arch)
                .map_err(|e| KernelError::Device(format!("compiling {family}.cu: {e}")))?;
            let module = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                .map_err(dev)?;
            for k in KERNELS {
                if let Ok(f) = module.load_function(k) {
                    funcs.insert(k, f);
                }
            }
        }
        let name = format!(
            "cuda:{ordinal} ({}, sm_{major}{minor})",
            ctx.name().unwrap_or_default()
        );
        Ok(Cuda {
            ctx,
            stream,
            blas,
            funcs,
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

    fn f(&self, name: &str) -> &CudaFunction {
        &self.funcs[name]
    }

    fn out(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: every kernel writes all n outputs before they are read.
        unsafe { self.stream.alloc::<f32>(n.max(1)) }.map_err(dev)
    }

    fn ints(&self, v: &[i32]) -> Result<CudaSlice<i32>> {
        self.stream.clone_htod(v).map_err(dev)
    }

    fn uints(&self, v: &[u32]) -> Result<CudaSlice<u32>> {
        self.stream.clone_htod(v).map_err(dev)
    }
}

impl Backend for Cuda {
    type KvCache = CudaKvCache;

    type Tensor = CudaTensor;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn upload(&self, shape: &[usize], data: HostData<'_>) -> Result<CudaTensor> {
        check::upload(shape, data.len())?;
        let v: Vec<f32> = match data {
            HostData::F32(d) => d.to_vec(),
            HostData::F16(d) => d.iter().map(|x| x.to_f32()).collect(),
            HostData::BF16(d) => d.iter().map(|x| x.to_f32()).collect(),
        };
        let buf = if v.is_empty() {
            self.out(1)?
        } else {
            self.stream.clone_htod(&v).map_err(dev)?
        };
        Ok(CudaTensor {
            shape: shape.to_vec(),
            buf,
        })
    }

    fn download(&self, t: &CudaTensor) -> Result<Vec<f32>> {
        let mut v = self.stream.clone_dtoh(&t.buf).map_err(dev)?;
        v.truncate(t.len());
        Ok(v)
    }

    fn shape<'a>(&self, t: &'a CudaTensor) -> &'a [usize] {
        &t.shape
    }

    fn reshape(&self, mut t: CudaTensor, shape: &[usize]) -> Result<CudaTensor> {
        check::reshape(&t.shape, shape)?;
        t.shape = shape.to_vec();
        Ok(t)
    }

    fn linear(&self, x: &CudaTensor, w: &CudaTensor, b: Option<&CudaTensor>) -> Result<CudaTensor> {
        let (m, k, n) = check::linear(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
        let mut y = self.out(m * n)?;
        // Row-major y[m,n] = x[m,k]·w[n,k]ᵀ is column-major yᵀ = w·xᵀ: cuBLAS
        // sees w as a k×n column-major matrix (transposed) and x as k×m.
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: k as i32,
            ldb: k as i32,
            beta: 0.0f32,
            ldc: n as i32,
        };
        // SAFETY: buffer extents match the dimensions above.
        unsafe { self.blas.gemm(cfg, &w.buf, &x.buf, &mut y) }.map_err(dev)?;
        let mut shape = x.shape.clone();
        *shape.last_mut().expect("x has an axis") = n;
        let y = CudaTensor { shape, buf: y };
        match b {
            Some(b) => self.add(&y, b),
            None => Ok(y),
        }
    }

    fn layer_norm(
        &self,
        x: &CudaTensor,
        gamma: &CudaTensor,
        beta: &CudaTensor,
        eps: f32,
    ) -> Result<CudaTensor> {
        let d = check::layer_norm(&x.shape, &gamma.shape, &beta.shape)?;
        let rows = x.len() / d.max(1);
        let mut y = self.out(x.len())?;
        if rows == 0 {
            return Ok(CudaTensor {
                shape: x.shape.clone(),
                buf: y,
            });
        }
        let di = d as i32;
        let mut l = self.stream.launch_builder(self.f("layer_norm_f32"));
        l.arg(&x.buf)
            .arg(&gamma.buf)
            .arg(&beta.buf)
            .arg(&mut y)
            .arg(&di)
            .arg(&eps);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: x.shape.clone(),
            buf: y,
        })
    }

    fn activation(&self, x: &CudaTensor, act: Activation) -> Result<CudaTensor> {
        let n = x.len();
        let mode: i32 = match act {
            Activation::Gelu => 0,
            Activation::GeluTanh => 1,
            Activation::QuickGelu => 2,
            Activation::Silu => 3,
            Activation::Relu => 4,
        };
        let mut y = self.out(n)?;
        let mut l = self.stream.launch_builder(self.f("activation_f32"));
        l.arg(&x.buf).arg(&mut y).arg(&n).arg(&mode);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: x.shape.clone(),
            buf: y,
        })
    }

    fn add(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        self.broadcast("add_f32", a, b)
    }

    fn mul(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        self.broadcast("mul_f32", a, b)
    }

    fn rms_norm(&self, x: &CudaTensor, gamma: &CudaTensor, eps: f32) -> Result<CudaTensor> {
        let d = check::rms_norm(&x.shape, &gamma.shape)?;
        let rows = x.len() / d.max(1);
        let mut y = self.out(x.len())?;
        if rows > 0 {
            let di = d as i32;
            let mut l = self.stream.launch_builder(self.f("rms_norm_f32"));
            l.arg(&x.buf).arg(&gamma.buf).arg(&mut y).arg(&di).arg(&eps);
            // SAFETY: argument list matches the kernel signature.
            unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        }
        Ok(CudaTensor {
            shape: x.shape.clone(),
            buf: y,
        })
    }

    fn rope(
        &self,
        x: &CudaTensor,
        heads: usize,
        positions: &[usize],
        rope: Rope<'_>,
    ) -> Result<CudaTensor> {
        let (rows, d) = check::rope(&x.shape, heads, positions, rope.inv_freq)?;
        let mut y = self.out(x.len())?;
        if rows > 0 {
            let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
            let pos = self.ints(&pos)?;
            let freq = self.stream.clone_htod(rope.inv_freq).map_err(dev)?;
            let (ri, hi, di) = (rows as i32, heads as i32, d as i32);
            let mut l = self.stream.launch_builder(self.f("rope_f32"));
            l.arg(&x.buf)
                .arg(&mut y)
                .arg(&pos)
                .arg(&freq)
                .arg(&ri)
                .arg(&hi)
                .arg(&di)
                .arg(&rope.scale);
            // SAFETY: as above.
            unsafe { l.launch(grid(rows * heads * d / 2)) }.map_err(dev)?;
        }
        Ok(CudaTensor {
            shape: x.shape.clone(),
            buf: y,
        })
    }

    fn kv_cache(&self, slots: usize, capacity: usize, width: usize) -> Result<CudaKvCache> {
        if capacity > MAX_CACHE_POSITIONS {
            return Err(KernelError::Device(format!(
                "a CUDA KV cache holds at most {MAX_CACHE_POSITIONS} positions per sequence, asked for {capacity}"
            )));
        }
        let n = (slots * capacity * width).max(1);
        Ok(CudaKvCache {
            width,
            capacity,
            k: self.stream.alloc_zeros::<f32>(n).map_err(dev)?,
            v: self.stream.alloc_zeros::<f32>(n).map_err(dev)?,
            filled: vec![0; slots],
        })
    }

    fn kv_store(
        &self,
        cache: &mut CudaKvCache,
        k: &CudaTensor,
        v: &CudaTensor,
        at: &[Pos],
    ) -> Result<()> {
        let (w, cap) = (cache.width, cache.capacity);
        let n = check::kv_store(&k.shape, &v.shape, w, cache.filled.len(), cap, at)?;
        if n == 0 {
            return Ok(());
        }
        for p in at {
            // A sequence starting over at position 0 reuses its slot.
            let f = &mut cache.filled[p.slot];
            *f = if p.pos == 0 { 1 } else { (*f).max(p.pos + 1) };
        }
        let dst: Vec<i32> = at.iter().map(|p| (p.slot * cap + p.pos) as i32).collect();
        let dst = self.ints(&dst)?;
        let (ni, wi) = (n as i32, w as i32);
        let mut l = self.stream.launch_builder(self.f("kv_store_f32"));
        l.arg(&k.buf)
            .arg(&v.buf)
            .arg(&mut cache.k)
            .arg(&mut cache.v)
            .arg(&dst)
            .arg(&ni)
            .arg(&wi);
        // SAFETY: as above; destinations were range-checked.
        unsafe { l.launch(grid(n * w)) }.map_err(dev)?;
        Ok(())
    }

    fn kv_copy(&self, cache: &mut CudaKvCache, moves: &[(usize, usize)], len: usize) -> Result<()> {
        let (w, cap) = (cache.width, cache.capacity);
        check::kv_copy(moves, len, cache.filled.len(), cap)?;
        if moves.is_empty() || len == 0 {
            return Ok(());
        }
        // Gather every source row first, then scatter (permutations are safe).
        let src: Vec<u32> = moves
            .iter()
            .flat_map(|&(from, _)| (0..len).map(move |p| (from * cap + p) as u32))
            .collect();
        let dst: Vec<i32> = moves
            .iter()
            .flat_map(|&(_, to)| (0..len).map(move |p| (to * cap + p) as i32))
            .collect();
        let idx = self.uints(&src)?;
        let (rows, wi) = (src.len(), w as i32);
        let mut gathered = Vec::with_capacity(2);
        for buf in [&cache.k, &cache.v] {
            let mut y = self.out(rows * w)?;
            let mut l = self.stream.launch_builder(self.f("gather_rows_f32"));
            l.arg(buf).arg(&idx).arg(&mut y).arg(&rows).arg(&wi);
            // SAFETY: argument list matches the kernel signature; rows were range-checked.
            unsafe { l.launch(grid(rows * w)) }.map_err(dev)?;
            gathered.push(y);
        }
        let (k, v) = (&gathered[0], &gathered[1]);
        let dst = self.ints(&dst)?;
        let ni = src.len() as i32;
        let mut l = self.stream.launch_builder(self.f("kv_store_f32"));
        l.arg(k)
            .arg(v)
            .arg(&mut cache.k)
            .arg(&mut cache.v)
            .arg(&dst)
            .arg(&ni)
            .arg(&wi);
        // SAFETY: argument list matches the kernel signature; rows were range-checked.
        unsafe { l.launch(grid(src.len() * w)) }.map_err(dev)?;
        let filled: Vec<usize> = moves
            .iter()
            .map(|&(from, _)| cache.filled[from].min(len))
            .collect();
        for (&(_, to), f) in moves.iter().zip(filled) {
            cache.filled[to] = f;
        }
        Ok(())
    }

    fn kv_attention(
        &self,
        q: &CudaTensor,
        cache: &CudaKvCache,
        at: &[Pos],
        heads: usize,
    ) -> Result<CudaTensor> {
        let (w, cap) = (cache.width, cache.capacity);
        let (rows, d, kv_heads) =
            check::kv_attention(&q.shape, w, cache.filled.len(), cap, at, heads)?;
        if let Some(p) = at.iter().find(|p| cache.filled[p.slot] < p.pos + 1) {
            return Err(KernelError::Shape {
                op: "kv_attention",
                detail: format!(
                    "slot {} has no keys stored up to position {}",
                    p.slot, p.pos
                ),
            });
        }
        let mut o = self.out(rows * heads * d)?;
        if rows > 0 {
            let base: Vec<i32> = at.iter().map(|p| (p.slot * cap) as i32).collect();
            let len: Vec<i32> = at.iter().map(|p| p.pos as i32 + 1).collect();
            let longest = at.iter().map(|p| p.pos + 1).max().unwrap_or(1);
            let (base, len) = (self.ints(&base)?, self.ints(&len)?);
            let (hi, di, wi, gi, scale) = (
                heads as i32,
                d as i32,
                w as i32,
                (heads / kv_heads) as i32,
                1.0f32 / (d as f32).sqrt(),
            );
            let mut l = self.stream.launch_builder(self.f("kv_attention_f32"));
            l.arg(&q.buf)
                .arg(&cache.k)
                .arg(&cache.v)
                .arg(&mut o)
                .arg(&base)
                .arg(&len)
                .arg(&hi)
                .arg(&di)
                .arg(&wi)
                .arg(&gi)
                .arg(&scale);
            let cfg = LaunchConfig {
                grid_dim: (rows as u32, heads as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: ((longest + d) * 4) as u32,
            };
            // SAFETY: as above; shared memory holds the longest row's scores and a query head.
            unsafe { l.launch(cfg) }.map_err(dev)?;
        }
        Ok(CudaTensor {
            shape: q.shape.clone(),
            buf: o,
        })
    }

    fn attention(
        &self,
        q: &CudaTensor,
        k: &CudaTensor,
        v: &CudaTensor,
        heads: usize,
        mask: &Mask,
    ) -> Result<CudaTensor> {
        check::attention(&q.shape, &k.shape, &v.shape, heads, mask)?;
        let (b, sq, hd) = (q.shape[0], q.shape[1], q.shape[2]);
        let sk = k.shape[1];
        let d = hd / heads;
        let lens: Vec<i32> = match &mask.key_lens {
            Some(l) => l.iter().map(|&x| x.min(sk) as i32).collect(),
            None => vec![sk as i32; b],
        };
        let lens = self.ints(&lens)?;
        let mut o = self.out(b * sq * hd)?;
        let (sqi, ski, hi, di, causal, scale) = (
            sq as i32,
            sk as i32,
            heads as i32,
            d as i32,
            mask.causal as i32,
            1.0f32 / (d as f32).sqrt(),
        );
        let mut l = self.stream.launch_builder(self.f("attention_f32"));
        l.arg(&q.buf)
            .arg(&k.buf)
            .arg(&v.buf)
            .arg(&mut o)
            .arg(&lens)
            .arg(&sqi)
            .arg(&ski)
            .arg(&hi)
            .arg(&di)
            .arg(&causal)
            .arg(&scale);
        let cfg = LaunchConfig {
            grid_dim: (sq as u32, heads as u32, b as u32),
            block_dim: (128, 1, 1),
            shared_mem_bytes: ((sk + d) * 4) as u32,
        };
        // SAFETY: as above; shared memory holds sk scores and d query values.
        unsafe { l.launch(cfg) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: q.shape.clone(),
            buf: o,
        })
    }

    fn embedding(&self, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
        let (_, d) = check::embedding(&table.shape, ids)?;
        self.gather("embedding_f32", table, ids, d)
    }

    fn prepend_row(&self, x: &CudaTensor, row: &CudaTensor) -> Result<CudaTensor> {
        let (b, s, d) = check::prepend_row(&x.shape, &row.shape)?;
        let (b, s, d) = (b as i32, s as i32, d as i32);
        let n = (b * (s + 1) * d) as usize;
        let mut y = self.out(n)?;
        let mut l = self.stream.launch_builder(self.f("prepend_row_f32"));
        l.arg(&x.buf)
            .arg(&row.buf)
            .arg(&mut y)
            .arg(&b)
            .arg(&s)
            .arg(&d);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: vec![b as usize, s as usize + 1, d as usize],
            buf: y,
        })
    }

    fn gather_rows(&self, x: &CudaTensor, index: &[usize]) -> Result<CudaTensor> {
        let d = check::gather_rows(&x.shape, index)?;
        let idx: Vec<u32> = index.iter().map(|&i| i as u32).collect();
        self.gather("gather_rows_f32", x, &idx, d)
    }

    fn masked_mean(&self, x: &CudaTensor, lens: &[usize]) -> Result<CudaTensor> {
        let (b, s, d) = check::masked_mean(&x.shape, lens)?;
        let (b, s, d) = (b as i32, s as i32, d as i32);
        let l32: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
        let lens_d = self.ints(&l32)?;
        let n = (b * d) as usize;
        let mut y = self.out(n)?;
        let mut l = self.stream.launch_builder(self.f("masked_mean_f32"));
        l.arg(&x.buf)
            .arg(&lens_d)
            .arg(&mut y)
            .arg(&b)
            .arg(&s)
            .arg(&d);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: vec![b as usize, d as usize],
            buf: y,
        })
    }

    fn l2_normalize(&self, x: &CudaTensor) -> Result<CudaTensor> {
        let d = x.last_dim();
        let rows = x.len() / d.max(1);
        let mut y = self.out(x.len())?;
        if rows == 0 {
            return Ok(CudaTensor {
                shape: x.shape.clone(),
                buf: y,
            });
        }
        let di = d as i32;
        let mut l = self.stream.launch_builder(self.f("l2_normalize_f32"));
        l.arg(&x.buf).arg(&mut y).arg(&di);
        // SAFETY: as above.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: x.shape.clone(),
            buf: y,
        })
    }
}

impl Cuda {
    /// `a op b` with `b` broadcast over `a`'s leading axes (`add_f32`, `mul_f32`).
    fn broadcast(&self, kernel: &str, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        check::add(&a.shape, &b.shape)?;
        let (n, bn) = (a.len(), b.len());
        let mut y = self.out(n)?;
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(&a.buf).arg(&b.buf).arg(&mut y).arg(&n).arg(&bn);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: a.shape.clone(),
            buf: y,
        })
    }

    /// Rows `ids` of `src` viewed as `[_, d]`, with kernel `kernel`.
    fn gather(&self, kernel: &str, src: &CudaTensor, ids: &[u32], d: usize) -> Result<CudaTensor> {
        let rows = ids.len();
        let idx = self.uints(if ids.is_empty() { &[0] } else { ids })?;
        let mut y = self.out(rows * d)?;
        let di = d as i32;
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(&src.buf).arg(&idx).arg(&mut y).arg(&rows).arg(&di);
        // SAFETY: as above; ids were range-checked by the caller.
        unsafe { l.launch(grid(rows * d)) }.map_err(dev)?;
        Ok(CudaTensor {
            shape: vec![rows, d],
            buf: y,
        })
    }
}
