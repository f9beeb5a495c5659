//! Qwen2-VL's native-resolution vision tower: the Conv3d patch embedding
//! (a linear map of each `(channel, time, y, x)` patch row), pre-norm ViT
//! blocks whose attention rotates queries and keys by the patch's (row,
//! column) with 2-D RoPE and sees the whole image, and the patch merger
//! (LayerNorm, then each 2×2 window's four rows as one, through a GELU MLP
//! into the language model's width). Ports `Qwen2VisionTransformerPretrainedModel`
//! of transformers `models/qwen2_vl/modeling_qwen2_vl.py`.

use lakecap_kernels::{Activation, Backend, HostData, Mask};

use super::config::VisionConfig;
use crate::error::{ModelError, Result};
use crate::nn::{LayerNorm, Linear, Mlp, Rotary, section_freqs};
use crate::weights::WeightSource;

struct Block<B: Backend> {
    norm1: LayerNorm<B>,
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
    proj: Linear<B>,
    norm2: LayerNorm<B>,
    mlp: Mlp<B>,
}

pub struct VisionTower<B: Backend> {
    pub cfg: VisionConfig,
    patch_embed: B::Tensor,
    blocks: Vec<Block<B>>,
    ln_q: LayerNorm<B>,
    merge_fc1: Linear<B>,
    merge_fc2: Linear<B>,
    /// 2-D RoPE: the height half and the width half of the frequencies.
    freqs: Vec<Vec<f32>>,
}

impl<B: Backend> VisionTower<B> {
    /// Loads the tower under `prefix` (`visual`, or transformers 5's `model.visual`).
    pub fn load(be: &B, cfg: &VisionConfig, w: &impl WeightSource, prefix: &str) -> Result<Self> {
        let (d, hd) = (cfg.embed_dim, cfg.head_dim());
        if hd == 0 || !hd.is_multiple_of(4) || cfg.num_heads * hd != d {
            return Err(ModelError::Unsupported(format!(
                "vision tower of width {d} with {} heads: the head width must divide the \
                 width and be a multiple of 4 (2-D RoPE)",
                cfg.num_heads
            )));
        }
        let act = Activation::from_hf(&cfg.hidden_act)
            .ok_or_else(|| ModelError::Unsupported(format!("activation `{}`", cfg.hidden_act)))?;
        let name = format!("{prefix}.patch_embed.proj.weight");
        let (shape, conv) = w.read_f32(&name)?;
        if conv.len() != d * cfg.patch_width() {
            return Err(ModelError::Weight {
                name,
                detail: format!("shape {shape:?}, expected {d} x {}", cfg.patch_width()),
            });
        }
        let patch_embed = be.upload_weight(&[d, cfg.patch_width()], HostData::F32(&conv))?;
        let blocks = (0..cfg.depth)
            .map(|i| {
                let p = format!("{prefix}.blocks.{i}");
                let mut qkv = Linear::load_split(be, w, &format!("{p}.attn.qkv"), d, d, 3)?;
                let (v, k, q) = (qkv.pop(), qkv.pop(), qkv.pop());
                let (Some(q), Some(k), Some(v)) = (q, k, v) else {
                    unreachable!("load_split gives 3 parts")
                };
                Ok(Block {
                    norm1: LayerNorm::load(be, w, &format!("{p}.norm1"), d, 1e-6)?,
                    q,
                    k,
                    v,
                    proj: Linear::load(be, w, &format!("{p}.attn.proj"), d, d, true)?,
                    norm2: LayerNorm::load(be, w, &format!("{p}.norm2"), d, 1e-6)?,
                    mlp: Mlp {
                        fc1: Linear::load(
                            be,
                            w,
                            &format!("{p}.mlp.fc1"),
                            d,
                            cfg.mlp_width(),
                            true,
                        )?,
                        fc2: Linear::load(
                            be,
                            w,
                            &format!("{p}.mlp.fc2"),
                            cfg.mlp_width(),
                            d,
                            true,
                        )?,
                        act,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = d * cfg.spatial_merge_size.pow(2);
        let m = format!("{prefix}.merger");
        // VisionRotaryEmbedding(head_dim / 2): inv_freq over a quarter of the head.
        let quarter: Vec<f32> = (0..hd / 4)
            .map(|i| 1.0 / 10_000f32.powf((2 * i) as f32 / (hd / 2) as f32))
            .collect();
        let both: Vec<f32> = quarter.iter().chain(&quarter).copied().collect();
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch_embed,
            blocks,
            ln_q: LayerNorm::load(be, w, &format!("{m}.ln_q"), d, 1e-6)?,
            merge_fc1: Linear::load(be, w, &format!("{m}.mlp.0"), merged, merged, true)?,
            merge_fc2: Linear::load(be, w, &format!("{m}.mlp.2"), merged, cfg.hidden_size, true)?,
            freqs: section_freqs(&both, &[hd / 4, hd / 4]),
        })
    }

    /// One image's patch rows `[t·h·w, patch width]` of grid `(t, h, w)` ->
    /// its features `[t·h·w / merge², hidden]`, in the prompt's token order.
    pub fn forward(&self, be: &B, rows: &[f32], grid: (usize, usize, usize)) -> Result<B::Tensor> {
        let (t, h, w) = grid;
        let (n, d, m) = (t * h * w, self.cfg.embed_dim, self.cfg.spatial_merge_size);
        if rows.len() != n * self.cfg.patch_width() || h % m != 0 || w % m != 0 {
            return Err(ModelError::Unsupported(format!(
                "{} patch values for a {t}x{h}x{w} grid of {}-value patches (merge {m})",
                rows.len(),
                self.cfg.patch_width()
            )));
        }
        let x = be.upload(&[n, self.cfg.patch_width()], HostData::F32(rows))?;
        let mut x = be.linear(&x, &self.patch_embed, None)?;
        // Patch (row, column) of each row: merge windows in row-major order.
        let (mut hpos, mut wpos) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..t {
            for bi in 0..h / m {
                for bj in 0..w / m {
                    for mi in 0..m {
                        for mj in 0..m {
                            hpos.push(bi * m + mi);
                            wpos.push(bj * m + mj);
                        }
                    }
                }
            }
        }
        let rotary = Rotary::sections(&self.freqs, vec![hpos, wpos]);
        let heads = self.cfg.num_heads;
        let full = Mask {
            causal: false,
            key_lens: None,
        };
        for b in &self.blocks {
            let y = b.norm1.forward(be, &x)?;
            let q = rotary.apply(be, b.q.forward(be, &y)?, heads)?;
            let k = rotary.apply(be, b.k.forward(be, &y)?, heads)?;
            let v = b.v.forward(be, &y)?;
            let [q, k, v] = [q, k, v].map(|z| be.reshape(z, &[1, n, d]));
            let a = be.attention(&q?, &k?, &v?, heads, &full)?;
            let a = b.proj.forward(be, &be.reshape(a, &[n, d])?)?;
            x = be.add(&x, &a)?;
            let y = b.mlp.forward(be, &b.norm2.forward(be, &x)?)?;
            x = be.add(&x, &y)?;
        }
        let x = be.reshape(self.ln_q.forward(be, &x)?, &[n / (m * m), d * m * m])?;
        let x = be.activation(&self.merge_fc1.forward(be, &x)?, Activation::Gelu)?;
        self.merge_fc2.forward(be, &x)
    }
}
