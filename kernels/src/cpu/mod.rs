//! The CPU backend: f32 compute over f32/f16/bf16 or GGML block-quantised
//! storage, multi-threaded with rayon.
//!
//! Each op family has a plain reference (`*_ref`, obviously correct loops) and
//! the fast path the backend uses; tests compare the two by relative error.

pub mod activation;
pub mod attention;
pub mod bf16_gemm;
pub mod conv;
pub mod gemm;
pub mod int8;
pub mod norm;
pub mod packed;
pub mod rope;
pub mod stored;

use std::borrow::Cow;

use half::{bf16, f16};
use rayon::prelude::*;

use crate::backend::{Activation, Backend, HostData, Mask, Pool, Pos, Result, Rope, Window, check};
use crate::cuda::Precision;

/// Element storage of a CPU tensor.
#[derive(Debug, Clone)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// GGML blocks, read where they are used: Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K products of few
    /// rows multiply them by 8-bit x in integer dot products (`int8`); other
    /// products widen four weight rows at a time, or the matrix in parallel
    /// for many rows; lookups widen only their rows.
    Quant(crate::quant::GgmlType, Vec<u8>),
    /// Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K rows of `k` values interleaved eight at a time
    /// for the VNNI kernels ([`packed`]), where the CPU has them.
    Packed {
        ty: crate::quant::GgmlType,
        k: usize,
        bytes: Vec<u8>,
    },
}

impl Data {
    /// GGML blocks of `shape` as this CPU keeps them: interleaved where
    /// [`packed::packs`] says so, else as they are.
    pub fn quant(ty: crate::quant::GgmlType, shape: &[usize], bytes: &[u8]) -> Data {
        match packed::packs(ty, shape) {
            true => Data::Packed {
                ty,
                k: shape[1],
                bytes: packed::pack(ty, bytes, shape[1]),
            },
            false => Data::Quant(ty, bytes.to_vec()),
        }
    }

    /// Elements `start..start + out.len()` as f32 into `out`.
    pub fn widen_into(&self, start: usize, out: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let end = start + out.len();
        match self {
            Data::F32(d) => out.copy_from_slice(&d[start..end]),
            Data::F16(d) => d[start..end].convert_to_f32_slice(out),
            Data::BF16(d) => d[start..end].convert_to_f32_slice(out),
            Data::Quant(ty, bytes) => crate::quant::dequantize_into(*ty, bytes, start, out),
            Data::Packed { ty, k, bytes } => packed::widen_into(*ty, bytes, *k, start, out),
        }
    }

    /// Appends elements `start..start + n` as f32, widening only those.
    pub fn extend_f32(&self, start: usize, n: usize, out: &mut Vec<f32>) {
        // `half`'s slice conversions vectorise (F16C for f16, a shift for
        // bf16); an element-wise map does not, and dominated a bf16 model's
        // profile.
        let at = out.len();
        out.resize(at + n, 0.0);
        self.widen_into(start, &mut out[at..]);
    }
}

/// A row-major tensor in host memory.
#[derive(Debug, Clone)]
pub struct CpuTensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl CpuTensor {
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> CpuTensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        CpuTensor {
            shape: shape.to_vec(),
            data: Data::F32(data),
        }
    }

    /// [`CpuTensor::f32`], half storage widened in parallel chunks.
    pub fn f32_par(&self) -> Cow<'_, [f32]> {
        match &self.data {
            Data::F32(d) => Cow::Borrowed(d),
            half => {
                let mut out = vec![0f32; self.len()];
                out.par_chunks_mut(1 << 16).enumerate().for_each(|(i, c)| {
                    half.widen_into(i << 16, c);
                });
                Cow::Owned(out)
            }
        }
    }

    /// The values as f32, converting half storage.
    pub fn f32(&self) -> Cow<'_, [f32]> {
        match &self.data {
            Data::F32(d) => Cow::Borrowed(d),
            half => {
                let mut out = Vec::with_capacity(self.len());
                half.extend_f32(0, self.len(), &mut out);
                Cow::Owned(out)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the last axis.
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

/// The widest SIMD lakecap's own CPU kernels may use (process-wide), so
/// tests run every path this machine has. The `gemm` crate's dispatch is its
/// own and unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Whatever the CPU has: AMX, AVX-512, AVX2/FMA.
    Best,
    /// AVX2/FMA at most.
    Avx2,
    /// The portable code only.
    Portable,
}

/// Set by [`limit_simd`], as `Simd as u8`.
static LIMIT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Restricts lakecap's own CPU kernels to `level` and below (process-wide).
pub fn limit_simd(level: Simd) {
    LIMIT.store(level as u8, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `level`'s paths may run under [`limit_simd`].
fn allowed(level: Simd) -> bool {
    LIMIT.load(std::sync::atomic::Ordering::Relaxed) <= level as u8
}

/// Whether the AVX2/FMA fast paths may run (std caches the CPUID check).
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    return allowed(Simd::Avx2)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the AVX-512 fast paths may run (AVX-512F and F16C).
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return allowed(Simd::Best)
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("f16c");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Asks for the cache line at `p` (a hint: it never faults, whatever the
/// address, so a pointer past a buffer's end is fine).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    hint::<3, T>(p) // _MM_HINT_T0
}

/// [`prefetch`] into L2 only (`prefetcht1`): for lines several steps ahead,
/// which would otherwise hold L1's miss buffers for a whole memory latency.
#[inline(always)]
pub(crate) fn prefetch_l2<T>(p: *const T) {
    hint::<2, T>(p) // _MM_HINT_T1
}

/// `prefetch` with x86's locality hint `H`.
#[inline(always)]
fn hint<const H: i32, T>(p: *const T) {
    // SAFETY: a prefetch reads nothing architecturally.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<H>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The SIMD paths the CPU backend takes on this machine, for benchmark and
/// log lines: the `gemm` crate's GEMM microkernels (AVX-512 where the CPU has
/// AVX-512F, through its `x86-v4` feature), lakecap's own kernels (small-row
/// GEMM, attention dots, activations; stored weight rows decoded in AVX-512
/// registers; GGML blocks by 8-bit x in VNNI or AVX2 integer dots, their
/// rows interleaved by 8 where VNNI runs them), and the bf16 GEMM for bf16
/// weights (AMX tiles or AVX512-BF16).
pub fn simd_paths() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        let gemm = if has!("avx512f") {
            "avx512f"
        } else if has!("avx2") && has!("fma") {
            "avx2+fma"
        } else {
            "scalar"
        };
        let own = match (avx512(), avx2_fma()) {
            (true, _) => "avx2+fma, f16/bf16 weight rows avx512f",
            (false, true) => "avx2+fma, f16/bf16 weight rows avx2",
            _ => "portable",
        };
        let blocks = match (int8::path(), int8::tiles_many_rows()) {
            (Some(p), true) => format!(", GGML blocks by 8-bit x {p}, rows interleaved by 8"),
            (Some(p), false) => format!(", GGML blocks by 8-bit x {p}"),
            (None, _) => String::new(),
        };
        let bf16 = match bf16_gemm::kernel() {
            Some(bf16_gemm::Kernel::Amx) => ", bf16 GEMMs on AMX tiles",
            Some(bf16_gemm::Kernel::Avx512) => ", bf16 GEMMs by avx512_bf16 dots",
            None => "",
        };
        format!("gemm crate {gemm}, lakecap kernels {own}{blocks}{bf16}")
    }
    #[cfg(not(target_arch = "x86_64"))]
    "gemm crate and lakecap kernels portable".to_string()
}

/// Tunes glibc's allocator for tensor work; call once at program start.
///
/// Every op returns a fresh buffer, and activations are megabytes: with
/// glibc's defaults each one is `mmap`ed, page-faulted in and zeroed by the
/// kernel, then unmapped again when dropped, which cost 15% of a CLIP batch
/// and 25% of a MiniLM one (`perf`: `exc_page_fault`, `clear_page_erms`).
/// Serving blocks of up to 32 MiB from the heap, growing each thread's heap
/// in 64 MiB steps and not trimming it lets freed buffers be reused as they
/// are; peak RSS is unchanged (measured). It changes process-wide malloc
/// settings, so the `lakecap` binary calls it and embedders opt in.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes allocator parameters.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        });
    }
}

/// The CPU backend's activation budget, 24 MiB by default: glibc maps
/// anything over 32 MiB afresh, so every op over such a tensor would
/// page-fault its whole output in again (8% of a BLIP-base batch of 16, whose
/// MLP activations are 113 MB), while the GEMMs of a 24 MiB pass still have
/// thousands of rows.
static ACTIVATION_BUDGET: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(24 << 20);

/// Sets the CPU backend's [`Backend::activation_budget`] (bytes, process-wide):
/// lower it to bound the peak memory of large batches. Outputs do not depend
/// on it.
pub fn set_activation_budget(bytes: usize) {
    ACTIVATION_BUDGET.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Rows `rows` of `src` viewed as `[_, d]` -> `[rows, d]` (indices checked by the caller).
/// Rows of `src` (an embedding table in half precision stays so: only the
/// rows taken are widened).
fn gather(src: &CpuTensor, rows: impl ExactSizeIterator<Item = usize>, d: usize) -> CpuTensor {
    let n = rows.len();
    let mut out = Vec::with_capacity(n * d);
    for i in rows {
        src.data.extend_f32(i * d, d, &mut out);
    }
    CpuTensor::from_f32(&[n, d], out)
}

/// `a op= b` element-wise, `b` broadcast over `a`'s leading axes.
fn broadcast(
    a: &CpuTensor,
    b: &CpuTensor,
    op: impl Fn(&mut f32, &f32) + Sync,
) -> Result<CpuTensor> {
    check::add(&a.shape, &b.shape)?;
    let mut out = a.f32().into_owned();
    let bv = b.f32();
    out.par_chunks_mut(bv.len())
        .for_each(|c| c.iter_mut().zip(bv.iter()).for_each(|(o, y)| op(o, y)));
    Ok(CpuTensor::from_f32(&a.shape, out))
}

/// The CPU backend, multiplying as `precision` (`lakecap.precision`) says:
/// `Auto` as the checkpoint's format is meant to run (GGML Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K
/// blocks by 8-bit x, as llama.cpp does; bf16 weights by bf16 GEMMs where
/// the CPU has AMX or AVX512-BF16), `F32` with f32 x in every product
/// (parity with an f32 reference), `Bf16` as `Auto` with f32/f16 weight
/// matrices converted to bf16 at load (as on a GPU). `F16` runs as `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpu {
    pub precision: Precision,
}

/// The CPU backend at [`Precision::Auto`]: what `Cpu` names as a value.
#[allow(non_upper_case_globals)]
pub const Cpu: Cpu = Cpu {
    precision: Precision::Auto,
};

impl Cpu {
    /// Whether every product keeps x in f32 (`Precision::F32`).
    fn exact(&self) -> bool {
        self.precision == Precision::F32
    }
}

impl Backend for Cpu {
    type Tensor = CpuTensor;
    type KvCache = attention::CpuKvCache;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn rounds_x_for_blocks(&self) -> bool {
        !self.exact()
    }

    fn activation_budget(&self) -> Option<usize> {
        Some(ACTIVATION_BUDGET.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn conv_scratch(&self, patch_bytes: usize) -> usize {
        patch_bytes.min(conv::PATCH_BYTES)
    }

    fn upload(&self, shape: &[usize], data: HostData<'_>) -> Result<CpuTensor> {
        check::upload(shape, &data)?;
        Ok(CpuTensor {
            shape: shape.to_vec(),
            data: match data {
                HostData::F32(d) => Data::F32(d.to_vec()),
                HostData::F16(d) => Data::F16(d.to_vec()),
                HostData::BF16(d) => Data::BF16(d.to_vec()),
                HostData::Quant { ty, bytes, .. } => Data::quant(ty, shape, bytes),
            },
        })
    }

    /// Under `Bf16`, f32 and f16 matrices become bf16 (GGML blocks and
    /// vectors stay as given).
    fn upload_weight(&self, shape: &[usize], data: HostData<'_>) -> Result<CpuTensor> {
        let to_bf16 = |v: &mut dyn Iterator<Item = f32>| v.map(bf16::from_f32).collect::<Vec<_>>();
        let converted = match (self.precision, data) {
            (Precision::Bf16, HostData::F32(d)) if shape.len() >= 2 => {
                to_bf16(&mut d.iter().copied())
            }
            (Precision::Bf16, HostData::F16(d)) if shape.len() >= 2 => {
                to_bf16(&mut d.iter().map(|v| v.to_f32()))
            }
            _ => return self.upload(shape, data),
        };
        self.upload(shape, HostData::BF16(&converted))
    }

    fn download(&self, t: &CpuTensor) -> Result<Vec<f32>> {
        Ok(t.f32().into_owned())
    }

    fn shape<'a>(&self, t: &'a CpuTensor) -> &'a [usize] {
        &t.shape
    }

    fn reshape(&self, mut t: CpuTensor, shape: &[usize]) -> Result<CpuTensor> {
        check::reshape(&t.shape, shape)?;
        t.shape = shape.to_vec();
        Ok(t)
    }

    fn linear(&self, x: &CpuTensor, w: &CpuTensor, b: Option<&CpuTensor>) -> Result<CpuTensor> {
        gemm::linear(x, w, b, self.exact())
    }

    fn linear_many(
        &self,
        x: &CpuTensor,
        ws: &[(&CpuTensor, Option<&CpuTensor>)],
    ) -> Result<Vec<CpuTensor>> {
        gemm::linear_many(x, ws, self.exact())
    }

    fn layer_norm(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        eps: f32,
    ) -> Result<CpuTensor> {
        norm::layer_norm(x, gamma, beta, eps)
    }

    fn activation(&self, x: &CpuTensor, act: Activation) -> Result<CpuTensor> {
        let mut v = x.f32().into_owned();
        v.par_chunks_mut(4096)
            .for_each(|c| activation::apply_slice(act, c));
        Ok(CpuTensor::from_f32(&x.shape, v))
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor> {
        broadcast(a, b, |o, y| *o += y)
    }

    fn act_mul(&self, gate: &CpuTensor, up: &CpuTensor, act: Activation) -> Result<CpuTensor> {
        check::act_mul(&gate.shape, &up.shape)?;
        let mut v = gate.f32().into_owned();
        let u = up.f32();
        v.par_chunks_mut(4096)
            .zip(u.par_chunks(4096))
            .for_each(|(g, u)| {
                activation::apply_slice(act, g);
                g.iter_mut().zip(u).for_each(|(x, y)| *x *= y);
            });
        Ok(CpuTensor::from_f32(&gate.shape, v))
    }

    fn rms_norm(&self, x: &CpuTensor, gamma: &CpuTensor, eps: f32) -> Result<CpuTensor> {
        norm::rms_norm(x, gamma, eps)
    }

    fn rope(
        &self,
        x: &CpuTensor,
        heads: usize,
        positions: &[usize],
        r: Rope<'_>,
    ) -> Result<CpuTensor> {
        rope::rope(x, heads, positions, r)
    }

    fn kv_cache(&self, slots: usize, capacity: usize, width: usize) -> Result<Self::KvCache> {
        Ok(attention::CpuKvCache::new(slots, capacity, width))
    }

    fn kv_store(
        &self,
        cache: &mut Self::KvCache,
        k: &CpuTensor,
        v: &CpuTensor,
        at: &[Pos],
    ) -> Result<()> {
        attention::kv_store(cache, k, v, at)
    }

    fn kv_copy(
        &self,
        cache: &mut Self::KvCache,
        moves: &[(usize, usize)],
        len: usize,
    ) -> Result<()> {
        attention::kv_copy(cache, moves, len)
    }

    fn kv_attention(
        &self,
        q: &CpuTensor,
        cache: &Self::KvCache,
        at: &[Pos],
        heads: usize,
    ) -> Result<CpuTensor> {
        attention::kv_attention(q, cache, at, heads)
    }

    fn attention(
        &self,
        q: &CpuTensor,
        k: &CpuTensor,
        v: &CpuTensor,
        heads: usize,
        mask: &Mask,
    ) -> Result<CpuTensor> {
        attention::attention(q, k, v, heads, mask)
    }

    fn embedding(&self, table: &CpuTensor, ids: &[u32]) -> Result<CpuTensor> {
        let (_, d) = check::embedding(&table.shape, ids)?;
        Ok(gather(table, ids.iter().map(|&i| i as usize), d))
    }

    fn prepend_row(&self, x: &CpuTensor, row: &CpuTensor) -> Result<CpuTensor> {
        let (b, s, d) = check::prepend_row(&x.shape, &row.shape)?;
        let (xv, rv) = (x.f32(), row.f32());
        let mut out = Vec::with_capacity(b * (s + 1) * d);
        for bi in 0..b {
            out.extend_from_slice(&rv);
            out.extend_from_slice(&xv[bi * s * d..(bi + 1) * s * d]);
        }
        Ok(CpuTensor::from_f32(&[b, s + 1, d], out))
    }

    fn gather_rows(&self, x: &CpuTensor, index: &[usize]) -> Result<CpuTensor> {
        let d = check::gather_rows(&x.shape, index)?;
        Ok(gather(x, index.iter().copied(), d))
    }

    fn masked_mean(&self, x: &CpuTensor, lens: &[usize]) -> Result<CpuTensor> {
        let (_, s, d) = check::masked_mean(&x.shape, lens)?;
        let xv = x.f32();
        let mut out = vec![0f32; lens.len() * d];
        for (bi, (&len, o)) in lens.iter().zip(out.chunks_mut(d)).enumerate() {
            for t in 0..len {
                let row = &xv[(bi * s + t) * d..(bi * s + t + 1) * d];
                o.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
            // Sentence-transformers clamps the token count at 1e-9.
            let n = (len as f32).max(1e-9);
            o.iter_mut().for_each(|a| *a /= n);
        }
        Ok(CpuTensor::from_f32(&[lens.len(), d], out))
    }

    fn l2_normalize(&self, x: &CpuTensor) -> Result<CpuTensor> {
        Ok(CpuTensor::from_f32(
            &x.shape,
            norm::l2_normalize(&x.f32(), x.last_dim()),
        ))
    }

    fn im2col(&self, x: &CpuTensor, win: &Window) -> Result<CpuTensor> {
        conv::im2col(x, win)
    }

    fn pool2d(&self, x: &CpuTensor, win: &Window, pool: Pool) -> Result<CpuTensor> {
        conv::pool2d(x, win, pool)
    }

    fn conv2d(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        b: Option<&CpuTensor>,
        win: &Window,
        residual: Option<&CpuTensor>,
        act: Option<Activation>,
    ) -> Result<CpuTensor> {
        conv::conv2d(x, w, b, win, residual, act, self.exact())
    }

    fn top_k(&self, x: &CpuTensor, k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        let (rows, n) = check::top_k(&x.shape, k)?;
        let x = x.f32();
        // Rows in parallel when there are many (nearest-neighbour search scores
        // a block of queries at once); decoding's few rows stay on this thread.
        let best: Vec<Vec<(f32, u32)>> = if rows >= 64 {
            x.par_chunks(n).map(|row| top_k_ref(row, k)).collect()
        } else {
            x.chunks(n).map(|row| top_k_ref(row, k)).collect()
        };
        let (mut values, mut indices) =
            (Vec::with_capacity(rows * k), Vec::with_capacity(rows * k));
        for (v, i) in best.into_iter().flatten() {
            values.push(v);
            indices.push(i);
        }
        Ok((values, indices))
    }
}

/// The `k` best `(value, index)` of `row` in [`Backend::top_k`]'s order:
/// one pass keeping the best `k` sorted, so greedy decoding (`k` = 1) costs
/// one comparison per logit.
pub fn top_k_ref(row: &[f32], k: usize) -> Vec<(f32, u32)> {
    use std::cmp::Ordering;
    fn rank(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
        match (a.0.is_nan(), b.0.is_nan()) {
            (false, true) => Ordering::Less,
            (true, false) => Ordering::Greater,
            (true, true) => a.1.cmp(&b.1),
            _ => b.0.partial_cmp(&a.0).expect("numbers").then(a.1.cmp(&b.1)),
        }
    }
    let k = k.min(row.len());
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    // The k-th best so far once there are k: most values lose to it, and a
    // plain comparison says so (a tie loses too: its index is higher). NaN
    // on either side compares false and takes the full ranking.
    let mut kth = f32::NAN;
    for (i, &v) in row.iter().enumerate() {
        if v <= kth {
            continue;
        }
        let c = (v, i as u32);
        if best.len() == k && rank(&best[k - 1], &c) == Ordering::Less {
            continue;
        }
        let at = best.partition_point(|b| rank(b, &c) == Ordering::Less);
        best.insert(at, c);
        best.truncate(k);
        if best.len() == k {
            kth = best[k - 1].0;
        }
    }
    best
}
