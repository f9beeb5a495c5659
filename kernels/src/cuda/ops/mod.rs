//! [`Backend`] for [`Cuda`]: shape checks shared with the CPU (`check`), then
//! one kernel launch per op (cuBLAS for GEMMs). Results are f32 tensors.
//!
//! The impl below only dispatches; each op family lives in the file named
//! after its kernel source in `kernels/cu/`:
//! - `norm.rs` (`norm.cu`): layer norm, RMS norm, L2 normalisation;
//! - `elementwise.rs` (`elementwise.cu`): activations, `add`, `act_mul`,
//!   embedding and row gathers, `prepend_row`, `masked_mean`;
//! - `rope.rs` (`rope.cu`): rotary position embeddings;
//! - `attention.rs` (`attention.cu`): fused and flash attention, the KV cache;
//! - `topk.rs` (`topk.cu`): per-row top-k;
//! - `cast.rs` (`cast.cu`): widening half storage for f32 ops, narrowing
//!   activations for half GEMMs;
//! - `image.rs` (`image.cu`): image preprocessing;
//! - `conv.rs` (`conv.cu`): im2col patches and pooling for convnets;
//! - `gemm.rs` (cuBLAS, no kernel source): `linear`.
//!
//! Launch geometry (`grid`, `per_row`) and device allocation stay in
//! `cuda/mod.rs`, shared by every family.

mod attention;
mod cast;
mod conv;
mod elementwise;
mod gemm;
mod image;
mod norm;
mod rope;
mod topk;

use super::{Cuda, CudaKvCache, CudaTensor, dev};
use crate::backend::{Activation, Backend, HostData, Mask, Pool, Pos, Result, Rope, Window, check};
use crate::image::{PixelPlan, RgbImage};

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
        check::upload(shape, &data)?;
        self.store(shape, data, false)
    }

    fn upload_weight(&self, shape: &[usize], data: HostData<'_>) -> Result<CudaTensor> {
        check::upload(shape, &data)?;
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
        gemm::linear(self, x, w, b)
    }

    fn layer_norm(
        &self,
        x: &CudaTensor,
        gamma: &CudaTensor,
        beta: &CudaTensor,
        eps: f32,
    ) -> Result<CudaTensor> {
        norm::layer_norm(self, x, gamma, beta, eps)
    }

    fn activation(&self, x: &CudaTensor, act: Activation) -> Result<CudaTensor> {
        elementwise::activation(self, x, act)
    }

    fn add(&self, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
        elementwise::add(self, a, b)
    }

    fn act_mul(&self, gate: &CudaTensor, up: &CudaTensor, act: Activation) -> Result<CudaTensor> {
        elementwise::act_mul(self, gate, up, act)
    }

    fn rms_norm(&self, x: &CudaTensor, gamma: &CudaTensor, eps: f32) -> Result<CudaTensor> {
        norm::rms_norm(self, x, gamma, eps)
    }

    fn rope(
        &self,
        x: &CudaTensor,
        heads: usize,
        positions: &[usize],
        rope: Rope<'_>,
    ) -> Result<CudaTensor> {
        rope::rope(self, x, heads, positions, rope)
    }

    fn kv_cache(&self, slots: usize, capacity: usize, width: usize) -> Result<CudaKvCache> {
        attention::kv_cache(self, slots, capacity, width)
    }

    fn kv_store(
        &self,
        cache: &mut CudaKvCache,
        k: &CudaTensor,
        v: &CudaTensor,
        at: &[Pos],
    ) -> Result<()> {
        attention::kv_store(self, cache, k, v, at)
    }

    fn kv_copy(&self, cache: &mut CudaKvCache, moves: &[(usize, usize)], len: usize) -> Result<()> {
        attention::kv_copy(self, cache, moves, len)
    }

    fn kv_attention(
        &self,
        q: &CudaTensor,
        cache: &CudaKvCache,
        at: &[Pos],
        heads: usize,
    ) -> Result<CudaTensor> {
        attention::kv_attention(self, q, cache, at, heads)
    }

    fn attention(
        &self,
        q: &CudaTensor,
        k: &CudaTensor,
        v: &CudaTensor,
        heads: usize,
        mask: &Mask,
    ) -> Result<CudaTensor> {
        attention::attention(self, q, k, v, heads, mask)
    }

    fn embedding(&self, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
        elementwise::embedding(self, table, ids)
    }

    fn prepend_row(&self, x: &CudaTensor, row: &CudaTensor) -> Result<CudaTensor> {
        elementwise::prepend_row(self, x, row)
    }

    fn gather_rows(&self, x: &CudaTensor, index: &[usize]) -> Result<CudaTensor> {
        elementwise::gather_rows(self, x, index)
    }

    fn masked_mean(&self, x: &CudaTensor, lens: &[usize]) -> Result<CudaTensor> {
        elementwise::masked_mean(self, x, lens)
    }

    fn l2_normalize(&self, x: &CudaTensor) -> Result<CudaTensor> {
        norm::l2_normalize(self, x)
    }

    fn pixel_patches(&self, images: &[RgbImage<'_>], plan: &PixelPlan) -> Result<CudaTensor> {
        self.device_pixel_patches(images, plan)
    }

    fn im2col(&self, x: &CudaTensor, win: &Window) -> Result<CudaTensor> {
        conv::im2col(self, x, win)
    }

    fn pool2d(&self, x: &CudaTensor, win: &Window, pool: Pool) -> Result<CudaTensor> {
        conv::pool2d(self, x, win, pool)
    }

    fn top_k(&self, x: &CudaTensor, k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
        topk::top_k(self, x, k)
    }
}
