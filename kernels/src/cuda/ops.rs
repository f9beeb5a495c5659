//! [`Backend`] for [`Cuda`]: shape checks shared with the CPU (`check`), then
//! one kernel launch per op (cuBLAS for GEMMs). Results are f32 tensors.

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use super::tensor::{Buf, Dtype};
use super::{Cuda, CudaKvCache, CudaTensor, dev, grid, per_row};
use crate::backend::{Activation, Backend, HostData, KernelError, Mask, Pos, Result, Rope, check};
use crate::image::{PixelPlan, RgbImage};

/// Longest slot the cached-attention kernel's shared memory can score (48 KiB
/// per block, less the query row).
const MAX_CACHE_POSITIONS: usize = 11_000;

/// The activation's number in `elementwise.cu`'s `act`.
fn act_mode(act: Activation) -> i32 {
    match act {
        Activation::Gelu => 0,
        Activation::GeluTanh => 1,
        Activation::QuickGelu => 2,
        Activation::Silu => 3,
        Activation::Relu => 4,
    }
}

/// Static shared memory a block may use without opting in.
const MAX_SHARED_BYTES: usize = 48 << 10;

/// Flash attention: query rows per block (one thread each), keys per tile
/// (as `flash_rows` in attention.cu), and the fewest query rows worth it.
const FLASH_QUERIES: usize = 64;
const FLASH_KEYS: usize = 64;
const FLASH_MIN_QUERIES: usize = 16;

impl Backend for Cuda {
    type KvCache = CudaKvCache;

    type Tensor = CudaTensor;

    fn name(&self) -> String {
        self.name.clone()
    }

    /// A share of the memory free when the backend started.
    fn activation_budget(&self) -> Option<usize> {
        Some(self.activation_budget)
    }

    fn upload(&self, shape: &[usize], data: HostData<'_>) -> Result<CudaTensor> {
        check::upload(shape, data.len())?;
        self.store(shape, data, false)
    }

    fn upload_weight(&self, shape: &[usize], data: HostData<'_>) -> Result<CudaTensor> {
        check::upload(shape, data.len())?;
        self.store(shape, data, true)
    }

    fn download(&self, t: &CudaTensor) -> Result<Vec<f32>> {
        let t_w = self.wide(t)?;
        let mut v = self.stream.clone_dtoh(&*t_w).map_err(dev)?;
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
        let x_w = self.wide(x)?;
        let mut y = self.out::<f32>(m * n)?;
        if m > 0 && n > 0 {
            match &w.buf {
                Buf::F32(wb) => self.gemm_f32(&x_w, wb, &mut y, m, k, n)?,
                Buf::Half(wb) => {
                    let xh = self.narrow(&x_w, m * k, w.dtype)?;
                    self.gemm_half(&xh, wb, w.dtype, &mut y, m, k, n)?;
                }
            }
        }
        let mut shape = x.shape.clone();
        *shape.last_mut().expect("x has an axis") = n;
        let y = CudaTensor::f32(shape, y);
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
        let x_w = self.wide(x)?;
        let gamma_w = self.wide(gamma)?;
        let beta_w = self.wide(beta)?;
        let rows = x.len() / d.max(1);
        let mut y = self.out::<f32>(x.len())?;
        if rows == 0 {
            return Ok(CudaTensor::f32(x.shape.clone(), y));
        }
        let di = d as i32;
        let mut l = self.stream.launch_builder(self.f("layer_norm_f32"));
        l.arg(&*x_w)
            .arg(&*gamma_w)
            .arg(&*beta_w)
            .arg(&mut y)
            .arg(&di)
            .arg(&eps);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        Ok(CudaTensor::f32(x.shape.clone(), y))
    }

    fn activation(&self, x: &CudaTensor, act: Activation) -> Result<CudaTensor> {
        let x_w = self.wide(x)?;
        let (n, mode) = (x.len(), act_mode(act));
        let mut y = self.out::<f32>(n)?;
        let mut l = self.stream.launch_builder(self.f("activation_f32"));
        l.arg(&*x_w).arg(&mut y).arg(&n).arg(&mode);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor::f32(x.shape.clone(), y))
    }

    fn add(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        self.broadcast("add_f32", a, b)
    }

    fn act_mul(&self, gate: &CudaTensor, up: &CudaTensor, act: Activation) -> Result<CudaTensor> {
        check::act_mul(&gate.shape, &up.shape)?;
        let (g, u) = (self.wide(gate)?, self.wide(up)?);
        let (n, mode) = (gate.len(), act_mode(act));
        let mut y = self.out::<f32>(n)?;
        let mut l = self.stream.launch_builder(self.f("act_mul_f32"));
        l.arg(&*g).arg(&*u).arg(&mut y).arg(&n).arg(&mode);
        // SAFETY: argument list matches the kernel signature; equal shapes were checked.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor::f32(gate.shape.clone(), y))
    }

    fn rms_norm(&self, x: &CudaTensor, gamma: &CudaTensor, eps: f32) -> Result<CudaTensor> {
        let d = check::rms_norm(&x.shape, &gamma.shape)?;
        let x_w = self.wide(x)?;
        let gamma_w = self.wide(gamma)?;
        let rows = x.len() / d.max(1);
        let mut y = self.out::<f32>(x.len())?;
        if rows > 0 {
            let di = d as i32;
            let mut l = self.stream.launch_builder(self.f("rms_norm_f32"));
            l.arg(&*x_w).arg(&*gamma_w).arg(&mut y).arg(&di).arg(&eps);
            // SAFETY: argument list matches the kernel signature.
            unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        }
        Ok(CudaTensor::f32(x.shape.clone(), y))
    }

    fn rope(
        &self,
        x: &CudaTensor,
        heads: usize,
        positions: &[usize],
        rope: Rope<'_>,
    ) -> Result<CudaTensor> {
        let (rows, d) = check::rope(&x.shape, heads, positions, rope.inv_freq)?;
        let x_w = self.wide(x)?;
        let mut y = self.out::<f32>(x.len())?;
        if rows > 0 {
            let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
            let pos = self.ints(&pos)?;
            let freq = self.stream.clone_htod(rope.inv_freq).map_err(dev)?;
            let (ri, hi, di) = (rows as i32, heads as i32, d as i32);
            let mut l = self.stream.launch_builder(self.f("rope_f32"));
            l.arg(&*x_w)
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
        Ok(CudaTensor::f32(x.shape.clone(), y))
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
        let k_w = self.wide(k)?;
        let v_w = self.wide(v)?;
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
        l.arg(&*k_w)
            .arg(&*v_w)
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
            let mut y = self.out::<f32>(rows * w)?;
            let mut l = self.stream.launch_builder(self.f("embedding_f32"));
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
        let q_w = self.wide(q)?;
        if let Some(p) = at.iter().find(|p| cache.filled[p.slot] < p.pos + 1) {
            return Err(KernelError::Shape {
                op: "kv_attention",
                detail: format!(
                    "slot {} has no keys stored up to position {}",
                    p.slot, p.pos
                ),
            });
        }
        let mut o = self.out::<f32>(rows * heads * d)?;
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
            l.arg(&*q_w)
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
        Ok(CudaTensor::f32(q.shape.clone(), o))
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
        let q_w = self.wide(q)?;
        let k_w = self.wide(k)?;
        let v_w = self.wide(v)?;
        let (b, sq, hd) = (q.shape[0], q.shape[1], q.shape[2]);
        let sk = k.shape[1];
        let d = hd / heads;
        let lens: Vec<i32> = match &mask.key_lens {
            Some(l) => l.iter().map(|&x| x.min(sk) as i32).collect(),
            None => vec![sk as i32; b],
        };
        let lens = self.ints(&lens)?;
        let mut o = self.out::<f32>(b * sq * hd)?;
        let (sqi, ski, hi, di, causal, scale) = (
            sq as i32,
            sk as i32,
            heads as i32,
            d as i32,
            mask.causal as i32,
            1.0f32 / (d as f32).sqrt(),
        );
        // Tiled flash attention where a block has queries to share key tiles
        // with; else one block per query row, scores in shared memory.
        let flash = sq >= FLASH_MIN_QUERIES && (d == 32 || d == 64);
        if !flash && (sk + d) * 4 > MAX_SHARED_BYTES {
            return Err(KernelError::Device(format!(
                "attention over {sk} keys with head width {d} needs the flash kernel (head width 32 or 64)"
            )));
        }
        let kernel = if flash {
            "flash_attention_f32"
        } else {
            "attention_f32"
        };
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(&*q_w)
            .arg(&*k_w)
            .arg(&*v_w)
            .arg(&mut o)
            .arg(&lens)
            .arg(&sqi)
            .arg(&ski)
            .arg(&hi)
            .arg(&di)
            .arg(&causal)
            .arg(&scale);
        let cfg = if flash {
            LaunchConfig {
                grid_dim: (sq.div_ceil(FLASH_QUERIES) as u32, heads as u32, b as u32),
                block_dim: (FLASH_QUERIES as u32, 1, 1),
                shared_mem_bytes: (2 * FLASH_KEYS * d * 4) as u32,
            }
        } else {
            LaunchConfig {
                grid_dim: (sq as u32, heads as u32, b as u32),
                block_dim: (128, 1, 1),
                shared_mem_bytes: ((sk + d) * 4) as u32,
            }
        };
        // SAFETY: as above; shared memory holds a key and a value tile, or
        // sk scores and d query values (bounded above).
        unsafe { l.launch(cfg) }.map_err(dev)?;
        Ok(CudaTensor::f32(q.shape.clone(), o))
    }

    fn embedding(&self, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
        let (_, d) = check::embedding(&table.shape, ids)?;
        self.gather(table, ids, d)
    }

    fn prepend_row(&self, x: &CudaTensor, row: &CudaTensor) -> Result<CudaTensor> {
        let (b, s, d) = check::prepend_row(&x.shape, &row.shape)?;
        let x_w = self.wide(x)?;
        let row_w = self.wide(row)?;
        let (b, s, d) = (b as i32, s as i32, d as i32);
        let n = (b * (s + 1) * d) as usize;
        let mut y = self.out::<f32>(n)?;
        let mut l = self.stream.launch_builder(self.f("prepend_row_f32"));
        l.arg(&*x_w)
            .arg(&*row_w)
            .arg(&mut y)
            .arg(&b)
            .arg(&s)
            .arg(&d);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor::f32(
            vec![b as usize, s as usize + 1, d as usize],
            y,
        ))
    }

    fn gather_rows(&self, x: &CudaTensor, index: &[usize]) -> Result<CudaTensor> {
        let d = check::gather_rows(&x.shape, index)?;
        let idx: Vec<u32> = index.iter().map(|&i| i as u32).collect();
        self.gather(x, &idx, d)
    }

    fn masked_mean(&self, x: &CudaTensor, lens: &[usize]) -> Result<CudaTensor> {
        let (b, s, d) = check::masked_mean(&x.shape, lens)?;
        let x_w = self.wide(x)?;
        let (b, s, d) = (b as i32, s as i32, d as i32);
        let l32: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
        let lens_d = self.ints(&l32)?;
        let n = (b * d) as usize;
        let mut y = self.out::<f32>(n)?;
        let mut l = self.stream.launch_builder(self.f("masked_mean_f32"));
        l.arg(&*x_w)
            .arg(&lens_d)
            .arg(&mut y)
            .arg(&b)
            .arg(&s)
            .arg(&d);
        // SAFETY: as above.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor::f32(vec![b as usize, d as usize], y))
    }

    fn l2_normalize(&self, x: &CudaTensor) -> Result<CudaTensor> {
        let x_w = self.wide(x)?;
        let d = x.last_dim();
        let rows = x.len() / d.max(1);
        let mut y = self.out::<f32>(x.len())?;
        if rows == 0 {
            return Ok(CudaTensor::f32(x.shape.clone(), y));
        }
        let di = d as i32;
        let mut l = self.stream.launch_builder(self.f("l2_normalize_f32"));
        l.arg(&*x_w).arg(&mut y).arg(&di);
        // SAFETY: as above.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        Ok(CudaTensor::f32(x.shape.clone(), y))
    }

    fn pixel_patches(&self, images: &[RgbImage<'_>], plan: &PixelPlan) -> Result<CudaTensor> {
        self.device_pixel_patches(images, plan)
    }

    fn top_k(&self, x: &CudaTensor, k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let (rows, n) = check::top_k(&x.shape, k)?;
        if rows == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let x_w = self.wide(x)?;
        let mut values = self.out::<f32>(rows * k)?;
        let mut indices = self.out::<u32>(rows * k)?;
        let (ni, ki) = (n as i32, k as i32);
        let mut l = self.stream.launch_builder(self.f("top_k_f32"));
        l.arg(&*x_w)
            .arg(&mut values)
            .arg(&mut indices)
            .arg(&ni)
            .arg(&ki);
        // SAFETY: argument list matches the kernel signature; k <= n was checked.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
        let mut v = self.stream.clone_dtoh(&values).map_err(dev)?;
        let mut i = self.stream.clone_dtoh(&indices).map_err(dev)?;
        v.truncate(rows * k);
        i.truncate(rows * k);
        Ok((v, i))
    }
}

impl Cuda {
    /// `a op b` with `b` broadcast over `a`'s leading axes (`add_f32`).
    fn broadcast(&self, kernel: &str, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        check::add(&a.shape, &b.shape)?;
        let a_w = self.wide(a)?;
        let b_w = self.wide(b)?;
        let (n, bn) = (a.len(), b.len());
        let mut y = self.out::<f32>(n)?;
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(&*a_w).arg(&*b_w).arg(&mut y).arg(&n).arg(&bn);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(CudaTensor::f32(a.shape.clone(), y))
    }

    /// Rows `ids` of `src` viewed as `[_, d]` (f32 rows out of any storage).
    fn gather(&self, src: &CudaTensor, ids: &[u32], d: usize) -> Result<CudaTensor> {
        let rows = ids.len();
        let idx = self.uints(if ids.is_empty() { &[0] } else { ids })?;
        let mut y = self.out::<f32>(rows * d)?;
        let di = d as i32;
        let kernel = match src.dtype {
            Dtype::F32 => "embedding_f32",
            Dtype::F16 => "embedding_f16",
            Dtype::Bf16 => "embedding_bf16",
        };
        let mut l = self.stream.launch_builder(self.f(kernel));
        match &src.buf {
            Buf::F32(b) => l.arg(b),
            Buf::Half(b) => l.arg(b),
        };
        l.arg(&idx).arg(&mut y).arg(&rows).arg(&di);
        // SAFETY: as above; ids were range-checked by the caller.
        unsafe { l.launch(grid(rows * d)) }.map_err(dev)?;
        Ok(CudaTensor::f32(vec![rows, d], y))
    }
}

impl Cuda {
    /// Row-major `y[m,n] = x[m,k]·w[n,k]ᵀ`, as cuBLAS's column-major
    /// `yᵀ = w·xᵀ` (w seen as a transposed k×n matrix, x as k×m); TF32 tensor
    /// cores unless the precision is f32.
    fn gemm_f32(
        &self,
        x: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
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
        unsafe { self.blas.gemm(cfg, w, x, y) }.map_err(dev)
    }

    /// The same product with f16/bf16 `x` and `w` (16-bit words) on tensor
    /// cores, accumulated and written in f32.
    #[allow(clippy::too_many_arguments)]
    fn gemm_half(
        &self,
        x: &CudaSlice<u16>,
        w: &CudaSlice<u16>,
        dtype: Dtype,
        y: &mut CudaSlice<f32>,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let half = match dtype {
            Dtype::Bf16 => cudaDataType::CUDA_R_16BF,
            _ => cudaDataType::CUDA_R_16F,
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (wp, _w) = w.device_ptr(&self.stream);
        let (xp, _x) = x.device_ptr(&self.stream);
        let (yp, _y) = y.device_ptr_mut(&self.stream);
        // SAFETY: pointers to live buffers of the extents above; the guards
        // order the call after their last writes on this stream.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                (&alpha as *const f32).cast(),
                wp as *const _,
                half,
                k as i32,
                xp as *const _,
                half,
                k as i32,
                (&beta as *const f32).cast(),
                yp as *mut _,
                cudaDataType::CUDA_R_32F,
                n as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(dev)
    }
}
