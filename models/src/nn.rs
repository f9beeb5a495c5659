//! Transformer building blocks shared by every architecture: linear layers,
//! layer norm and RMSNorm, multi-head attention, MLPs, the encoder layer in its
//! pre-norm (CLIP, ViT) and post-norm (BERT) forms, and the decoder's cached
//! attention with rotary positions and grouped-query heads (Llama, Qwen2).
//! Models only map their weight names onto these.

use lakecap_kernels::{Activation, Backend, HostData, Mask, Pos, Rope};

use crate::error::Result;
use crate::weights::WeightSource;

/// `y = x · wᵀ + b` with HF `nn.Linear` weights `[out, in]`.
pub struct Linear<B: Backend> {
    pub w: B::Tensor,
    pub b: Option<B::Tensor>,
}

impl<B: Backend> Linear<B> {
    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`).
    pub fn load(
        be: &B,
        w: &impl WeightSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        Ok(Linear {
            w: w.load(be, &format!("{prefix}.weight"), &[d_out, d_in])?,
            b: if bias {
                Some(w.load(be, &format!("{prefix}.bias"), &[d_out])?)
            } else {
                None
            },
        })
    }

    /// Loads a fused projection (`{prefix}.weight [parts·d_out, d_in]`, with
    /// bias) as `parts` separate layers, e.g. BLIP's `qkv`.
    pub fn load_split(
        be: &B,
        w: &impl WeightSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        parts: usize,
    ) -> Result<Vec<Self>> {
        let (ws, wv) = w.read_f32(&format!("{prefix}.weight"))?;
        let (_, bv) = w.read_f32(&format!("{prefix}.bias"))?;
        if wv.len() != parts * d_out * d_in || bv.len() != parts * d_out {
            return Err(crate::error::ModelError::Weight {
                name: format!("{prefix}.weight"),
                detail: format!("shape {ws:?}, expected [{}, {d_in}]", parts * d_out),
            });
        }
        (0..parts)
            .map(|i| {
                Ok(Linear {
                    w: be.upload_weight(
                        &[d_out, d_in],
                        HostData::F32(&wv[i * d_out * d_in..(i + 1) * d_out * d_in]),
                    )?,
                    b: Some(
                        be.upload_weight(&[d_out], HostData::F32(&bv[i * d_out..(i + 1) * d_out]))?,
                    ),
                })
            })
            .collect()
    }

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(be.linear(x, &self.w, self.b.as_ref())?)
    }

    /// The N layers' outputs on one `x`, through [`Backend::linear_many`].
    pub fn forward_many<const N: usize>(
        be: &B,
        x: &B::Tensor,
        layers: [&Self; N],
    ) -> Result<[B::Tensor; N]> {
        let ws = layers.map(|l| (&l.w, l.b.as_ref()));
        be.linear_many(x, &ws)?.try_into().map_err(|v: Vec<_>| {
            crate::error::ModelError::Unsupported(format!(
                "{} linear_many returned {} tensors for {N} weights",
                be.name(),
                v.len()
            ))
        })
    }
}

pub struct LayerNorm<B: Backend> {
    gamma: B::Tensor,
    beta: B::Tensor,
    eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `{prefix}.weight` and `{prefix}.bias`.
    pub fn load(be: &B, w: &impl WeightSource, prefix: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            gamma: w.load(be, &format!("{prefix}.weight"), &[d])?,
            beta: w.load(be, &format!("{prefix}.bias"), &[d])?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(be.layer_norm(x, &self.gamma, &self.beta, self.eps)?)
    }
}

/// RMSNorm (`{prefix}.weight` only).
pub struct RmsNorm<B: Backend> {
    gamma: B::Tensor,
    eps: f32,
}

impl<B: Backend> RmsNorm<B> {
    pub fn load(be: &B, w: &impl WeightSource, prefix: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            gamma: w.load(be, &format!("{prefix}.weight"), &[d])?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(be.rms_norm(x, &self.gamma, self.eps)?)
    }
}

/// Multi-head self-attention with separate q/k/v/out projections.
pub struct Attention<B: Backend> {
    pub q: Linear<B>,
    pub k: Linear<B>,
    pub v: Linear<B>,
    pub out: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> Attention<B> {
    pub fn forward(&self, be: &B, x: &B::Tensor, mask: &Mask) -> Result<B::Tensor> {
        let q = self.q.forward(be, x)?;
        let k = self.k.forward(be, x)?;
        let v = self.v.forward(be, x)?;
        let a = be.attention(&q, &k, &v, self.heads, mask)?;
        self.out.forward(be, &a)
    }

    /// [`Self::forward`] for one query row per item, `x [b, s, d]`'s rows
    /// `rows` (flat indices, item i's row in item i) -> `[b, d]`: keys and
    /// values from every row, queries from these only.
    fn forward_rows(
        &self,
        be: &B,
        x: &B::Tensor,
        mask: &Mask,
        rows: &[usize],
    ) -> Result<B::Tensor> {
        let (b, d) = (rows.len(), be.shape(x)[2]);
        let q = self.q.forward(be, &be.gather_rows(x, rows)?)?;
        let q = be.reshape(q, &[b, 1, d])?;
        let k = self.k.forward(be, x)?;
        let v = self.v.forward(be, x)?;
        let a = be.attention(&q, &k, &v, self.heads, mask)?;
        self.out.forward(be, &be.reshape(a, &[b, d])?)
    }
}

/// `fc2(act(fc1(x)))`.
pub struct Mlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub act: Activation,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let h = be.activation(&self.fc1.forward(be, x)?, self.act)?;
        self.fc2.forward(be, &h)
    }
}

/// `down(act(gate(x)) * up(x))` (SwiGLU when `act` is SiLU).
pub struct GatedMlp<B: Backend> {
    pub gate: Linear<B>,
    pub up: Linear<B>,
    pub down: Linear<B>,
    pub act: Activation,
}

impl<B: Backend> GatedMlp<B> {
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let [gate, up] = Linear::forward_many(be, x, [&self.gate, &self.up])?;
        let h = be.act_mul(&gate, &up, self.act)?;
        self.down.forward(be, &h)
    }
}

/// Rotary positions of a batch of rows, in parts: each part rotates the
/// pairs of its own frequencies (the others are zero, so it leaves them
/// alone) by its own per-row positions. Ordinary RoPE is one part; Qwen2-VL's
/// M-RoPE has three (temporal, height, width) and its vision tower's 2-D RoPE
/// two (height, width). Each part is one pass of the backend's `rope`.
pub struct Rotary<'a> {
    pub parts: Vec<(Rope<'a>, Vec<usize>)>,
}

impl<'a> Rotary<'a> {
    /// Ordinary RoPE: row `i` at `positions[i]`.
    pub fn plain(rope: Rope<'a>, positions: Vec<usize>) -> Self {
        Rotary {
            parts: vec![(rope, positions)],
        }
    }

    /// Parts over `freqs` (from [`section_freqs`]), part `j` at `positions[j]`.
    pub fn sections(freqs: &'a [Vec<f32>], positions: Vec<Vec<usize>>) -> Self {
        Rotary {
            parts: freqs
                .iter()
                .zip(positions)
                .map(|(f, p)| {
                    let rope = Rope {
                        inv_freq: f,
                        scale: 1.0,
                    };
                    (rope, p)
                })
                .collect(),
        }
    }

    /// `x [n, heads·d]` rotated.
    pub fn apply<B: Backend>(&self, be: &B, x: B::Tensor, heads: usize) -> Result<B::Tensor> {
        let mut x = x;
        for (rope, positions) in &self.parts {
            x = be.rope(&x, heads, positions, *rope)?;
        }
        Ok(x)
    }
}

/// `inv_freq` split into consecutive sections of `sizes`: section `j` keeps
/// its own frequencies and zeroes the rest (angle 0 rotates nothing).
pub fn section_freqs(inv_freq: &[f32], sizes: &[usize]) -> Vec<Vec<f32>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let part = (0..inv_freq.len())
                .map(|i| {
                    if (start..start + n).contains(&i) {
                        inv_freq[i]
                    } else {
                        0.0
                    }
                })
                .collect();
            start += n;
            part
        })
        .collect()
}

/// Decoder attention over a KV cache: the new tokens' keys and values are
/// stored at their positions, then every query attends to its sequence's
/// cache. `kv_heads < heads` is grouped-query attention.
pub struct CachedAttention<B: Backend> {
    pub q: Linear<B>,
    pub k: Linear<B>,
    pub v: Linear<B>,
    pub out: Linear<B>,
    pub heads: usize,
    pub kv_heads: usize,
}

impl<B: Backend> CachedAttention<B> {
    /// `x [n, d]`, row `i` at `at[i]`; `rotary` rotates queries and keys.
    pub fn forward(
        &self,
        be: &B,
        x: &B::Tensor,
        cache: &mut B::KvCache,
        at: &[Pos],
        rotary: Option<&Rotary<'_>>,
    ) -> Result<B::Tensor> {
        let [mut q, mut k, v] = Linear::forward_many(be, x, [&self.q, &self.k, &self.v])?;
        if let Some(r) = rotary {
            q = r.apply(be, q, self.heads)?;
            k = r.apply(be, k, self.kv_heads)?;
        }
        be.kv_store(cache, &k, &v, at)?;
        let a = be.kv_attention(&q, cache, at, self.heads)?;
        self.out.forward(be, &a)
    }
}

/// Decoder cross-attention over an encoder's output: each sequence's encoder
/// keys and values are computed once ([`CrossAttention::fill`]) into a cache
/// slot; every decoding step's queries then attend to all of them.
pub struct CrossAttention<B: Backend> {
    pub q: Linear<B>,
    pub k: Linear<B>,
    pub v: Linear<B>,
    pub out: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> CrossAttention<B> {
    /// Stores the keys and values of `enc [n, d_enc]` at positions `0..n` of `slot`.
    pub fn fill(&self, be: &B, cache: &mut B::KvCache, enc: &B::Tensor, slot: usize) -> Result<()> {
        let n = be.shape(enc)[0];
        let at: Vec<Pos> = (0..n).map(|pos| Pos { slot, pos }).collect();
        let (k, v) = (self.k.forward(be, enc)?, self.v.forward(be, enc)?);
        Ok(be.kv_store(cache, &k, &v, &at)?)
    }

    /// `x [rows, d]`, row `i` of sequence slot `slots[i]`, over `n` encoder positions.
    pub fn forward(
        &self,
        be: &B,
        x: &B::Tensor,
        cache: &B::KvCache,
        slots: &[usize],
        n: usize,
    ) -> Result<B::Tensor> {
        let at: Vec<Pos> = slots.iter().map(|&slot| Pos { slot, pos: n - 1 }).collect();
        let a = be.kv_attention(&self.q.forward(be, x)?, cache, &at, self.heads)?;
        self.out.forward(be, &a)
    }
}

/// Where an encoder layer normalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// `x + attn(ln1(x))`, then `x + mlp(ln2(x))` (CLIP, ViT, BLIP vision).
    Pre,
    /// `ln1(x + attn(x))`, then `ln2(x + mlp(x))` (BERT).
    Post,
}

pub struct EncoderLayer<B: Backend> {
    pub attn: Attention<B>,
    pub ln1: LayerNorm<B>,
    pub mlp: Mlp<B>,
    pub ln2: LayerNorm<B>,
    pub norm: NormPlacement,
}

impl<B: Backend> EncoderLayer<B> {
    pub fn forward(&self, be: &B, x: &B::Tensor, mask: &Mask) -> Result<B::Tensor> {
        Ok(match self.norm {
            NormPlacement::Pre => {
                let h = self.attn.forward(be, &self.ln1.forward(be, x)?, mask)?;
                let x = be.add(x, &h)?;
                let h = self.mlp.forward(be, &self.ln2.forward(be, &x)?)?;
                be.add(&x, &h)?
            }
            NormPlacement::Post => {
                let h = self.attn.forward(be, x, mask)?;
                let x = self.ln1.forward(be, &be.add(x, &h)?)?;
                let h = self.mlp.forward(be, &x)?;
                self.ln2.forward(be, &be.add(&x, &h)?)?
            }
        })
    }

    /// [`Self::forward`]'s output at `at[i]` of each item `i` of `x [b, s,
    /// d]` alone -> `[b, d]`: what a pooled encoder reads of its last layer
    /// (CLIP's class or end-of-text token). The other rows still give keys
    /// and values; their queries, output projection and MLP are skipped.
    pub fn forward_at(
        &self,
        be: &B,
        x: &B::Tensor,
        mask: &Mask,
        at: &[usize],
    ) -> Result<B::Tensor> {
        let s = be.shape(x)[1];
        let rows = flat_rows(s, at);
        // Each query sees what it saw among all of them: keys up to itself
        // where causal, within its item's length.
        let lens = at.iter().enumerate().map(|(i, p)| {
            let len = mask.key_lens.as_ref().map_or(s, |l| l[i]);
            if mask.causal { len.min(p + 1) } else { len }
        });
        let mask = Mask {
            causal: false,
            key_lens: Some(lens.collect()),
        };
        let x_at = be.gather_rows(x, &rows)?;
        Ok(match self.norm {
            NormPlacement::Pre => {
                let h = self
                    .attn
                    .forward_rows(be, &self.ln1.forward(be, x)?, &mask, &rows)?;
                let x = be.add(&x_at, &h)?;
                let h = self.mlp.forward(be, &self.ln2.forward(be, &x)?)?;
                be.add(&x, &h)?
            }
            NormPlacement::Post => {
                let h = self.attn.forward_rows(be, x, &mask, &rows)?;
                let x = self.ln1.forward(be, &be.add(&x_at, &h)?)?;
                let h = self.mlp.forward(be, &x)?;
                self.ln2.forward(be, &be.add(&x, &h)?)?
            }
        })
    }
}

/// [`encode`] where only row `at[i]` of each item's output is read: the
/// last layer at those rows alone ([`EncoderLayer::forward_at`]) -> `[b, d]`.
pub fn encode_at<B: Backend>(
    be: &B,
    layers: &[EncoderLayer<B>],
    x: B::Tensor,
    mask: &Mask,
    at: &[usize],
) -> Result<B::Tensor> {
    let Some((last, first)) = layers.split_last() else {
        return Ok(be.gather_rows(&x, &flat_rows(be.shape(&x)[1], at))?);
    };
    last.forward_at(be, &encode(be, first, x, mask)?, mask, at)
}

/// Row `at[i]` of item `i` as a row of the items' `[b·s, d]` flattening.
fn flat_rows(s: usize, at: &[usize]) -> Vec<usize> {
    at.iter().enumerate().map(|(i, p)| i * s + p).collect()
}

/// How many items of `rows_each` rows to encode per pass so that the widest
/// activation (`rows × width` f32) fits the backend's activation budget.
pub fn items_per_pass<B: Backend>(be: &B, rows_each: usize, width: usize) -> usize {
    be.activation_budget()
        .map_or(usize::MAX, |b| b / (rows_each * width * 4).max(1))
        .max(1)
}

/// Runs `layers` in order.
pub fn encode<B: Backend>(
    be: &B,
    layers: &[EncoderLayer<B>],
    mut x: B::Tensor,
    mask: &Mask,
) -> Result<B::Tensor> {
    for l in layers {
        x = l.forward(be, &x, mask)?;
    }
    Ok(x)
}
