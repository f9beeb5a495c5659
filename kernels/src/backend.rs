//! The backend seam: every op a model needs, over an opaque device tensor.
//!
//! Models are generic over [`Backend`] and never see where their tensors live;
//! the CPU backend ([`crate::cpu::Cpu`]) is the reference and the CUDA backend
//! implements the same trait. Shapes are row-major; the last axis is contiguous.

use half::{bf16, f16};

use crate::image::{PixelPlan, RgbImage};

/// Errors a backend can report (shape mismatches are caller bugs, but a model
/// file with wrong shapes must fail cleanly, not panic).
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T> = std::result::Result<T, KernelError>;

/// Checks a shape condition, naming the op in the error.
pub fn ensure(cond: bool, op: &'static str, detail: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(KernelError::Shape {
            op,
            detail: detail(),
        })
    }
}

/// Host data handed to a backend, in the dtype it is stored in (weights keep
/// their file dtype: f16/bf16 checkpoints stay half-size in memory).
#[derive(Debug, Clone, Copy)]
pub enum HostData<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    /// GGML blocks of `len` values (a whole number of blocks; checked by the
    /// caller): the CPU keeps them as they are, a GPU dequantises them.
    Quant {
        ty: crate::quant::GgmlType,
        bytes: &'a [u8],
        len: usize,
    },
}

impl HostData<'_> {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::F16(d) => d.len(),
            HostData::BF16(d) => d.len(),
            HostData::Quant { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Element-wise activations used by the supported architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` (HF `gelu`).
    Gelu,
    /// Tanh approximation (HF `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `x * sigmoid(1.702 x)` (HF `quick_gelu`, OpenAI CLIP).
    QuickGelu,
    /// `x * sigmoid(x)` (HF `silu`).
    Silu,
    Relu,
}

impl Activation {
    /// Maps an HF `hidden_act` name.
    pub fn from_hf(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }
}

/// Which keys each query may attend to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask {
    /// Query `i` sees keys `0..=i` only.
    pub causal: bool,
    /// Per batch row, the number of valid (unpadded, right-padded) keys.
    pub key_lens: Option<Vec<usize>>,
}

/// Where a token sits in a [`Backend::KvCache`]: its sequence slot and its
/// position in that sequence. A query at `pos` sees the slot's keys `0..=pos`,
/// which makes prefill causal and lets one call mix prefill and decode rows of
/// different sequences (continuous batching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub slot: usize,
    pub pos: usize,
}

/// Rotary position embedding (HF `rotate_half` convention): per head, pairs
/// `(i, i + d/2)` rotate by `pos · inv_freq[i]`; `scale` multiplies cos and sin
/// (YaRN's attention factor, else 1).
#[derive(Debug, Clone, Copy)]
pub struct Rope<'a> {
    pub inv_freq: &'a [f32],
    pub scale: f32,
}

/// The geometry of a 2-D convolution or pooling window over NHWC images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `(height, width)` of the window.
    pub kernel: (usize, usize),
    /// `(vertical, horizontal)` step.
    pub stride: (usize, usize),
    /// Padding `[top, left, bottom, right]`: zeros for a convolution;
    /// positions a pooling window skips.
    pub pad: [usize; 4],
}

impl Window {
    /// `(out_h, out_w)` over an `h × w` image (floor division, as ONNX and
    /// PyTorch with `ceil_mode` off), or `None` where the window does not fit.
    pub fn out_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let [t, l, b, r] = self.pad;
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || h + t + b < kh || w + l + r < kw {
            return None;
        }
        Some(((h + t + b - kh) / sh + 1, (w + l + r - kw) / sw + 1))
    }

    /// Whether the window is a plain per-pixel product (1×1, step 1, no pad).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.pad == [0; 4]
    }
}

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The largest value in the window (padding never wins).
    Max,
    /// The mean of the window's positions inside the image (ONNX
    /// `AveragePool` with `count_include_pad = 0`).
    Avg,
}

/// The ops a model runs. Every method takes and returns device tensors; only
/// `upload`/`download` cross the host boundary.
pub trait Backend: Send + Sync + 'static {
    type Tensor: Send + Sync;
    /// Keys and values of one attention layer for up to `slots` sequences of
    /// up to `capacity` positions each (a decoder's KV cache).
    type KvCache: Send;

    /// Human-readable device name (for progress lines and benchmarks).
    fn name(&self) -> String;

    /// Largest activation (bytes) a model should produce in one op; models
    /// split a batch into passes whose widest activation fits. `None`: no limit.
    fn activation_budget(&self) -> Option<usize> {
        None
    }

    /// Scratch memory a [`Backend::conv2d`] needs whose patches take
    /// `patch_bytes` whole: all of it by default (im2col, then one GEMM).
    fn conv_scratch(&self, patch_bytes: usize) -> usize {
        patch_bytes
    }

    /// Whether products with GGML Q4_0, Q4_1, Q8_0, Q4_K or Q6_K weights first round x to
    /// 8 bits per 32 values, as llama.cpp does (the CPU backend: integer dot
    /// products); otherwise they multiply f32 x by the dequantised weights.
    fn rounds_x_for_blocks(&self) -> bool {
        false
    }

    /// Copies host data of `shape` to the device.
    fn upload(&self, shape: &[usize], data: HostData<'_>) -> Result<Self::Tensor>;
    /// Uploads a checkpoint tensor; a backend may store it in another
    /// precision than `data` (the CUDA backend's half-precision weights).
    fn upload_weight(&self, shape: &[usize], data: HostData<'_>) -> Result<Self::Tensor> {
        self.upload(shape, data)
    }
    /// Copies a tensor back as f32.
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    fn shape<'a>(&self, t: &'a Self::Tensor) -> &'a [usize];
    /// Same data, new shape of equal element count.
    fn reshape(&self, t: Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;

    /// `x [.., k] · wᵀ + b` with `w [n, k]` (the PyTorch `nn.Linear` layout).
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;
    /// [`Backend::linear`] of one `x` by several `(w, b)` (a layer's q/k/v or
    /// gate/up projections), in order: a backend may run them as one pass
    /// (the CPU wakes its threads once for a decoding step's products).
    fn linear_many(
        &self,
        x: &Self::Tensor,
        ws: &[(&Self::Tensor, Option<&Self::Tensor>)],
    ) -> Result<Vec<Self::Tensor>> {
        ws.iter().map(|(w, b)| self.linear(x, w, *b)).collect()
    }
    /// LayerNorm over the last axis.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor>;
    fn activation(&self, x: &Self::Tensor, act: Activation) -> Result<Self::Tensor>;
    /// Element-wise `a + b`; `b` may also be a suffix shape of `a`, broadcast
    /// over the leading axes (biases, position embeddings).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `act(gate) * up` element-wise over equal shapes: a gated MLP's
    /// SiLU·mul (SwiGLU) in one pass.
    fn act_mul(
        &self,
        gate: &Self::Tensor,
        up: &Self::Tensor,
        act: Activation,
    ) -> Result<Self::Tensor>;
    /// RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) * gamma`.
    fn rms_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, eps: f32) -> Result<Self::Tensor>;
    /// Rotary embedding of `x [n, heads·d]`, row `i` at `positions[i]`.
    fn rope(
        &self,
        x: &Self::Tensor,
        heads: usize,
        positions: &[usize],
        rope: Rope<'_>,
    ) -> Result<Self::Tensor>;
    /// An empty cache; `width` is the key (and value) row width, kv_heads·d.
    fn kv_cache(&self, slots: usize, capacity: usize, width: usize) -> Result<Self::KvCache>;
    /// Stores rows of `k`, `v [n, width]` at `at[i]`.
    fn kv_store(
        &self,
        cache: &mut Self::KvCache,
        k: &Self::Tensor,
        v: &Self::Tensor,
        at: &[Pos],
    ) -> Result<()>;
    /// Slot `to` takes positions `0..len` of slot `from`, for every
    /// `(from, to)` of `moves` at once (sources are read before any is
    /// written, so permutations are fine): beam search reordering its beams.
    fn kv_copy(
        &self,
        cache: &mut Self::KvCache,
        moves: &[(usize, usize)],
        len: usize,
    ) -> Result<()>;
    /// Attention of `q [n, heads·d]` over the cache: row `i` attends to keys
    /// `0..=at[i].pos` of slot `at[i].slot`. Grouped-query attention when the
    /// cache holds fewer heads (`width / d`) than `heads`.
    fn kv_attention(
        &self,
        q: &Self::Tensor,
        cache: &Self::KvCache,
        at: &[Pos],
        heads: usize,
    ) -> Result<Self::Tensor>;
    /// Multi-head attention, `q [b, sq, h·d]`, `k`/`v [b, sk, h·d]` -> `[b, sq, h·d]`,
    /// softmax(q kᵀ / √d + mask) v, fused per (batch, head).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        heads: usize,
        mask: &Mask,
    ) -> Result<Self::Tensor>;
    /// Rows of `table [vocab, d]` for `ids` -> `[ids.len(), d]`; an id out of
    /// range is an error.
    fn embedding(&self, table: &Self::Tensor, ids: &[u32]) -> Result<Self::Tensor>;
    /// `x [b, s, d]` with `row [d]` prepended on axis 1 -> `[b, s+1, d]` (class tokens).
    fn prepend_row(&self, x: &Self::Tensor, row: &Self::Tensor) -> Result<Self::Tensor>;
    /// Rows `index[i]` of `x` viewed as `[n, d]` -> `[index.len(), d]`.
    fn gather_rows(&self, x: &Self::Tensor, index: &[usize]) -> Result<Self::Tensor>;
    /// Mean over the first `lens[i]` positions of each `x [b, s, d]` -> `[b, d]`.
    fn masked_mean(&self, x: &Self::Tensor, lens: &[usize]) -> Result<Self::Tensor>;
    /// Each row of `x [n, d]` scaled to unit L2 norm (zero rows stay zero).
    fn l2_normalize(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Per row of `x [.., n]`, the `k` best values and their indices,
    /// flattened `[rows, k]`, best first: larger values first, ties to the
    /// lower index (`torch.argmax`'s first maximum), NaN last. Greedy and
    /// top-k decoding and nearest-neighbour search read only these, so a
    /// device returns `k` values per row instead of the whole row.
    fn top_k(&self, x: &Self::Tensor, k: usize) -> Result<(Vec<f32>, Vec<u32>)>;
    /// Patches of `x [n, h, w, c]` (NHWC) under `win` as rows
    /// `[n, oh, ow, kh·kw·c]`, ordered (ky, kx, channel), zeros where the
    /// window covers padding: the input of a convolution as a GEMM.
    fn im2col(&self, x: &Self::Tensor, win: &Window) -> Result<Self::Tensor>;
    /// Max or average pooling of `x [n, h, w, c]` (NHWC) -> `[n, oh, ow, c]`.
    fn pool2d(&self, x: &Self::Tensor, win: &Window, pool: Pool) -> Result<Self::Tensor>;
    /// 2-D convolution of `x [n, h, w, c]` (NHWC) with `w [o, kh·kw·c]`
    /// (the kernel's axes in (ky, kx, channel) order) and bias `b [o]` ->
    /// `[n, oh, ow, o]`, then `+ residual` (of that shape) and `act` when
    /// given: a residual block's tail in one op. One GEMM, over
    /// [`Backend::im2col`]'s patches unless the window is pointwise.
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        win: &Window,
        residual: Option<&Self::Tensor>,
        act: Option<Activation>,
    ) -> Result<Self::Tensor> {
        let (n, oh, ow, _) = check::conv2d(self.shape(x), self.shape(w), win)?;
        let o = self.shape(w)[0];
        check::residual(residual.map(|r| self.shape(r)), &[n, oh, ow, o])?;
        let y = if win.is_pointwise() {
            self.linear(x, w, b)?
        } else {
            self.linear(&self.im2col(x, win)?, w, b)?
        };
        let mut y = self.reshape(y, &[n, oh, ow, o])?;
        if let Some(r) = residual {
            y = self.add(&y, r)?;
        }
        match act {
            Some(act) => self.activation(&y, act),
            None => Ok(y),
        }
    }
    /// Model inputs `[images.len(), patches, 3·p·p]` made from 8-bit RGB
    /// images by `plan` (decoding stays on the host). This default runs the
    /// plan on the host and uploads the result; a GPU backend uploads the
    /// pixels and resizes, crops and normalises on the device instead, with
    /// bit-identical results.
    fn pixel_patches(&self, images: &[RgbImage<'_>], plan: &PixelPlan) -> Result<Self::Tensor> {
        check::pixel_patches(images, plan)?;
        let mut flat =
            Vec::with_capacity(images.len() * plan.num_patches() * 3 * plan.patch.pow(2));
        for img in images {
            flat.extend(plan.patches(img));
        }
        self.upload(
            &[images.len(), plan.num_patches(), 3 * plan.patch.pow(2)],
            HostData::F32(&flat),
        )
    }
}

/// Shape checks shared by every backend, so that all of them reject the same
/// calls with the same messages. Each returns the sizes the op needs.
pub mod check {
    use super::{HostData, Mask, Result, ensure};

    fn numel(shape: &[usize]) -> usize {
        shape.iter().product()
    }

    /// `data` fills `shape`; quantised data is exactly its blocks.
    pub fn upload(shape: &[usize], data: &HostData<'_>) -> Result<()> {
        let (n, len) = (numel(shape), data.len());
        ensure(n == len, "upload", || {
            format!("shape {shape:?} holds {n} values, got {len}")
        })?;
        if let HostData::Quant { ty, bytes, len } = data {
            ensure(ty.bytes_for(*len) == Some(bytes.len()), "upload", || {
                format!(
                    "{len} {ty:?} values are not {} bytes of whole blocks",
                    bytes.len()
                )
            })?;
        }
        Ok(())
    }

    pub fn reshape(from: &[usize], to: &[usize]) -> Result<()> {
        ensure(numel(from) == numel(to), "reshape", || {
            format!("{from:?} -> {to:?}")
        })
    }

    /// `(m, k, n)` of `x [m.., k] · w[n, k]ᵀ (+ b[n])`.
    pub fn linear(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<(usize, usize, usize)> {
        let k = x.last().copied().unwrap_or(1);
        ensure(w.len() == 2 && w[1] == k, "linear", || {
            format!("x {x:?} · wᵀ with w {w:?}")
        })?;
        let n = w[0];
        if let Some(b) = b {
            ensure(numel(b) == n, "linear", || {
                format!("bias {b:?} for {n} outputs")
            })?;
        }
        Ok((numel(x) / k.max(1), k, n))
    }

    /// Width of the normalised axis.
    pub fn layer_norm(x: &[usize], gamma: &[usize], beta: &[usize]) -> Result<usize> {
        let d = x.last().copied().unwrap_or(1);
        ensure(numel(gamma) == d && numel(beta) == d, "layer_norm", || {
            format!("x {x:?}, gamma {gamma:?}, beta {beta:?}")
        })?;
        Ok(d)
    }

    /// Width of the normalised axis.
    pub fn rms_norm(x: &[usize], gamma: &[usize]) -> Result<usize> {
        let d = x.last().copied().unwrap_or(1);
        ensure(numel(gamma) == d, "rms_norm", || {
            format!("x {x:?}, gamma {gamma:?}")
        })?;
        Ok(d)
    }

    /// `(rows, d)` of a rope call on `x [rows, heads·d]`.
    pub fn rope(
        x: &[usize],
        heads: usize,
        positions: &[usize],
        inv_freq: &[f32],
    ) -> Result<(usize, usize)> {
        let w = x.last().copied().unwrap_or(0);
        let rows = numel(x) / w.max(1);
        let d = w.checked_div(heads).unwrap_or(0);
        ensure(
            heads > 0
                && w.is_multiple_of(heads)
                && d == 2 * inv_freq.len()
                && positions.len() == rows,
            "rope",
            || {
                format!(
                    "x {x:?}, {heads} heads, {} positions, {} frequencies",
                    positions.len(),
                    inv_freq.len()
                )
            },
        )?;
        Ok((rows, d))
    }

    /// Rows of `k`/`v [n, width]` stored at `at` in a cache of `slots × capacity`.
    pub fn kv_store(
        k: &[usize],
        v: &[usize],
        width: usize,
        slots: usize,
        capacity: usize,
        at: &[super::Pos],
    ) -> Result<usize> {
        ensure(
            k == v && k.last() == Some(&width) && numel(k) / width.max(1) == at.len(),
            "kv_store",
            || format!("k {k:?}, v {v:?}, width {width}, {} positions", at.len()),
        )?;
        kv_positions("kv_store", slots, capacity, at)?;
        Ok(at.len())
    }

    fn kv_positions(
        op: &'static str,
        slots: usize,
        capacity: usize,
        at: &[super::Pos],
    ) -> Result<()> {
        match at.iter().find(|p| p.slot >= slots || p.pos >= capacity) {
            Some(p) => Err(super::KernelError::Shape {
                op,
                detail: format!(
                    "position {} of slot {} is outside the cache ({slots} slots of {capacity} positions)",
                    p.pos, p.slot
                ),
            }),
            None => Ok(()),
        }
    }

    /// Checks a `kv_copy` against a cache of `slots × capacity`.
    pub fn kv_copy(
        moves: &[(usize, usize)],
        len: usize,
        slots: usize,
        capacity: usize,
    ) -> Result<()> {
        ensure(
            len <= capacity && moves.iter().all(|&(a, b)| a < slots && b < slots),
            "kv_copy",
            || format!("{moves:?} of {len} positions in a cache of {slots} slots × {capacity}"),
        )
    }

    /// `(rows, d, kv_heads)` of a cached attention call.
    pub fn kv_attention(
        q: &[usize],
        width: usize,
        slots: usize,
        capacity: usize,
        at: &[super::Pos],
        heads: usize,
    ) -> Result<(usize, usize, usize)> {
        let w = q.last().copied().unwrap_or(0);
        let rows = numel(q) / w.max(1);
        let d = w.checked_div(heads).unwrap_or(0);
        ensure(
            d > 0
                && w == heads * d
                && width.is_multiple_of(d)
                && heads.is_multiple_of(width / d)
                && rows == at.len(),
            "kv_attention",
            || {
                format!(
                    "q {q:?} with {heads} heads over a cache of width {width}, {} positions",
                    at.len()
                )
            },
        )?;
        kv_positions("kv_attention", slots, capacity, at)?;
        Ok((rows, d, width / d))
    }

    /// Images whose pixel buffers match their sizes, resized to at least a
    /// pixel, under a plan whose crop is whole patches.
    pub fn pixel_patches(
        images: &[crate::image::RgbImage<'_>],
        plan: &crate::image::PixelPlan,
    ) -> Result<()> {
        let (ch, cw) = plan.crop;
        ensure(
            plan.patch > 0 && ch > 0 && cw > 0 && ch % plan.patch == 0 && cw % plan.patch == 0,
            "pixel_patches",
            || format!("a {ch}x{cw} crop in {}-pixel patches", plan.patch),
        )?;
        for (i, img) in images.iter().enumerate() {
            ensure(
                img.px.len() == img.width * img.height * 3
                    && img.width > 0
                    && img.height > 0
                    && img.resize.0 > 0
                    && img.resize.1 > 0,
                "pixel_patches",
                || {
                    format!(
                        "image {i}: {} bytes for {}x{} RGB, resized to {:?}",
                        img.px.len(),
                        img.width,
                        img.height,
                        img.resize
                    )
                },
            )?;
        }
        Ok(())
    }

    /// `(n, oh, ow, c)` of a window over `x [n, h, w, c]`.
    pub fn window(
        op: &'static str,
        x: &[usize],
        win: &super::Window,
    ) -> Result<(usize, usize, usize, usize)> {
        ensure(x.len() == 4, op, || {
            format!("x must be [n, h, w, c], got {x:?}")
        })?;
        match win.out_size(x[1], x[2]) {
            Some((oh, ow)) => Ok((x[0], oh, ow, x[3])),
            None => Err(super::KernelError::Shape {
                op,
                detail: format!("window {win:?} does not fit an image of {}x{}", x[1], x[2]),
            }),
        }
    }

    /// `(n, oh, ow, c)` of a convolution of `x` by `w [o, kh·kw·c]`.
    pub fn conv2d(
        x: &[usize],
        w: &[usize],
        win: &super::Window,
    ) -> Result<(usize, usize, usize, usize)> {
        let out = window("conv2d", x, win)?;
        let k = win.kernel.0 * win.kernel.1 * out.3;
        ensure(w.len() == 2 && w[1] == k, "conv2d", || {
            format!(
                "weights {w:?} for a {:?} window over {} channels",
                win.kernel, out.3
            )
        })?;
        Ok(out)
    }

    /// A residual added to a convolution's output has its shape.
    pub fn residual(residual: Option<&[usize]>, out: &[usize]) -> Result<()> {
        ensure(residual.is_none_or(|r| r == out), "conv2d", || {
            format!("residual {residual:?} for an output of {out:?}")
        })
    }

    /// `(rows, n)` of a top-k call; `k` must be in `1..=n`.
    pub fn top_k(x: &[usize], k: usize) -> Result<(usize, usize)> {
        let n = x.last().copied().unwrap_or(0);
        ensure(k >= 1 && k <= n, "top_k", || {
            format!("k = {k} of rows {x:?}")
        })?;
        Ok((numel(x) / n, n))
    }

    pub fn act_mul(gate: &[usize], up: &[usize]) -> Result<()> {
        ensure(gate == up, "act_mul", || {
            format!("gate {gate:?}, up {up:?}")
        })
    }

    pub fn add(a: &[usize], b: &[usize]) -> Result<()> {
        ensure(a.ends_with(b) && numel(b) > 0, "add", || {
            format!("{a:?} + {b:?}: the second shape must be a suffix of the first")
        })
    }

    /// Checks the shapes of an attention call (shared by every backend).
    pub fn attention(
        q: &[usize],
        k: &[usize],
        v: &[usize],
        heads: usize,
        mask: &Mask,
    ) -> Result<()> {
        ensure(
            q.len() == 3
                && k == v
                && k.len() == 3
                && q[0] == k[0]
                && q[2] == k[2]
                && heads > 0
                && q[2].is_multiple_of(heads),
            "attention",
            || format!("q {q:?}, k {k:?}, v {v:?}, {heads} heads"),
        )?;
        if let Some(l) = &mask.key_lens {
            ensure(l.len() == q[0], "attention", || {
                format!("{} key lengths for batch {}", l.len(), q[0])
            })?;
        }
        Ok(())
    }

    /// `(vocab, d)` of an embedding table, with every id in range.
    pub fn embedding(table: &[usize], ids: &[u32]) -> Result<(usize, usize)> {
        ensure(table.len() == 2, "embedding", || {
            format!("table must be [vocab, d], got {table:?}")
        })?;
        let (vocab, d) = (table[0], table[1]);
        match ids.iter().find(|&&i| i as usize >= vocab) {
            Some(bad) => Err(super::KernelError::Shape {
                op: "embedding",
                detail: format!("token id {bad} out of range for a vocabulary of {vocab}"),
            }),
            None => Ok((vocab, d)),
        }
    }

    /// `(b, s, d)` of `x` for `prepend_row`.
    pub fn prepend_row(x: &[usize], row: &[usize]) -> Result<(usize, usize, usize)> {
        ensure(x.len() == 3 && numel(row) == x[2], "prepend_row", || {
            format!("x {x:?}, row {row:?}")
        })?;
        Ok((x[0], x[1], x[2]))
    }

    /// Row width of `x`, with every index in range.
    pub fn gather_rows(x: &[usize], index: &[usize]) -> Result<usize> {
        let d = x.last().copied().unwrap_or(1);
        let n = numel(x) / d.max(1);
        ensure(index.iter().all(|&i| i < n), "gather_rows", || {
            format!("index out of range for {n} rows: {index:?}")
        })?;
        Ok(d)
    }

    /// `(b, s, d)` of `x` for `masked_mean`.
    pub fn masked_mean(x: &[usize], lens: &[usize]) -> Result<(usize, usize, usize)> {
        ensure(
            x.len() == 3 && lens.len() == x[0] && lens.iter().all(|&l| l <= x[1]),
            "masked_mean",
            || format!("x {x:?}, lens {lens:?}"),
        )?;
        Ok((x[0], x[1], x[2]))
    }
}
