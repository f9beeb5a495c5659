//! The native-resolution vision towers of Qwen2-VL and Qwen2.5-VL: the
//! Conv3d patch embedding (a linear map of each `(channel, time, y, x)` patch
//! row), pre-norm ViT blocks whose attention rotates queries and keys by the
//! patch's (row, column) with 2-D RoPE, and the patch merger (a norm, then
//! each 2×2 window's four rows as one, through a GELU MLP into the language
//! model's width).
//!
//! Qwen2-VL's blocks use LayerNorm and a plain quick-GELU MLP, and attend
//! over the whole image. Qwen2.5-VL's use RMSNorm and a gated SiLU MLP, and
//! attend within windows of `window_size` pixels except in the layers of
//! `fullatt_block_indexes`: the tokens are put in window order first (each
//! window's merge units row by row), each window attends as one padded batch
//! row, and the merged features are put back in image order at the end.
//! Ports `Qwen2VisionTransformerPretrainedModel` (transformers
//! `models/qwen2_vl/modeling_qwen2_vl.py`) and
//! `Qwen2_5_VisionTransformerPretrainedModel` (`models/qwen2_5_vl/`,
//! `get_vision_window_index` of `vision_utils.py`).

use lakecap_kernels::{Activation, Backend, HostData, Mask};

use super::config::VisionConfig;
use crate::error::{ModelError, Result};
use crate::nn::{GatedMlp, LayerNorm, Linear, Mlp, RmsNorm, Rotary, section_freqs};
use crate::weights::WeightSource;

enum Norm<B: Backend> {
    Layer(LayerNorm<B>),
    Rms(RmsNorm<B>),
}

impl<B: Backend> Norm<B> {
    fn load(be: &B, w: &impl WeightSource, prefix: &str, d: usize, rms: bool) -> Result<Self> {
        Ok(if rms {
            Norm::Rms(RmsNorm::load(be, w, prefix, d, 1e-6)?)
        } else {
            Norm::Layer(LayerNorm::load(be, w, prefix, d, 1e-6)?)
        })
    }

    fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        match self {
            Norm::Layer(n) => n.forward(be, x),
            Norm::Rms(n) => n.forward(be, x),
        }
    }
}

enum Ffn<B: Backend> {
    Plain(Mlp<B>),
    Gated(GatedMlp<B>),
}

struct Block<B: Backend> {
    norm1: Norm<B>,
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
    proj: Linear<B>,
    norm2: Norm<B>,
    ffn: Ffn<B>,
}

pub struct VisionTower<B: Backend> {
    pub cfg: VisionConfig,
    patch_embed: B::Tensor,
    blocks: Vec<Block<B>>,
    ln_q: Norm<B>,
    merge_fc1: Linear<B>,
    merge_fc2: Linear<B>,
    /// 2-D RoPE: the height half and the width half of the frequencies.
    freqs: Vec<Vec<f32>>,
}

/// One image's patch rows and its `(t, h, w)` grid.
pub type ImageRows<'a> = (&'a [f32], (usize, usize, usize));

/// Qwen2.5-VL's window order of an `h`×`w` grid of merge units: the units
/// window by window (`ws` units a side; edge windows smaller), row by row
/// within each, and the units per window.
pub fn window_order(h: usize, w: usize, ws: usize) -> (Vec<usize>, Vec<usize>) {
    let (mut order, mut lens) = (Vec::with_capacity(h * w), Vec::new());
    for wy in (0..h).step_by(ws) {
        for wx in (0..w).step_by(ws) {
            let before = order.len();
            for y in wy..(wy + ws).min(h) {
                order.extend((wx..(wx + ws).min(w)).map(|x| y * w + x));
            }
            lens.push(order.len() - before);
        }
    }
    (order, lens)
}

impl<B: Backend> VisionTower<B> {
    /// Loads the tower under `prefix` (`visual`, or transformers 5's `model.visual`).
    pub fn load(be: &B, cfg: &VisionConfig, w: &impl WeightSource, prefix: &str) -> Result<Self> {
        let (d, hd) = (cfg.width(), cfg.head_dim());
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
        let (rms, f) = (cfg.is_qwen2_5(), cfg.mlp_width());
        let blocks = (0..cfg.depth)
            .map(|i| {
                let p = format!("{prefix}.blocks.{i}");
                let lin = |name: &str, din, dout| {
                    Linear::load(be, w, &format!("{p}.mlp.{name}"), din, dout, true)
                };
                let ffn = if rms {
                    Ffn::Gated(GatedMlp {
                        gate: lin("gate_proj", d, f)?,
                        up: lin("up_proj", d, f)?,
                        down: lin("down_proj", f, d)?,
                        act,
                    })
                } else {
                    Ffn::Plain(Mlp {
                        fc1: lin("fc1", d, f)?,
                        fc2: lin("fc2", f, d)?,
                        act,
                    })
                };
                let mut qkv = Linear::load_split(be, w, &format!("{p}.attn.qkv"), d, d, 3)?;
                let v = qkv.pop().expect("3 parts");
                let k = qkv.pop().expect("3 parts");
                let q = qkv.pop().expect("3 parts");
                Ok(Block {
                    norm1: Norm::load(be, w, &format!("{p}.norm1"), d, rms)?,
                    q,
                    k,
                    v,
                    proj: Linear::load(be, w, &format!("{p}.attn.proj"), d, d, true)?,
                    norm2: Norm::load(be, w, &format!("{p}.norm2"), d, rms)?,
                    ffn,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = d * cfg.spatial_merge_size.pow(2);
        let m = format!("{prefix}.merger");
        // The vision rotary embedding: inv_freq over a quarter of the head.
        let quarter: Vec<f32> = (0..hd / 4)
            .map(|i| 1.0 / 10_000f32.powf((2 * i) as f32 / (hd / 2) as f32))
            .collect();
        let both: Vec<f32> = quarter.iter().chain(&quarter).copied().collect();
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch_embed,
            blocks,
            ln_q: Norm::load(be, w, &format!("{m}.ln_q"), d, rms)?,
            merge_fc1: Linear::load(be, w, &format!("{m}.mlp.0"), merged, merged, true)?,
            merge_fc2: Linear::load(be, w, &format!("{m}.mlp.2"), merged, cfg.out_width(), true)?,
            freqs: section_freqs(&both, &[hd / 4, hd / 4]),
        })
    }

    /// Images' patch rows `[t·h·w, patch width]` of grids `(t, h, w)` ->
    /// their features `[t·h·w / merge², out width]`, in the prompt's token
    /// order. The images go through every linear layer together, and
    /// attention stays within each image (each window, in Qwen2.5-VL's
    /// windowed layers).
    pub fn forward(&self, be: &B, images: &[ImageRows<'_>]) -> Result<Vec<B::Tensor>> {
        let (d, m, pw) = (
            self.cfg.width(),
            self.cfg.spatial_merge_size,
            self.cfg.patch_width(),
        );
        let unit = m * m;
        let mut flat = Vec::new();
        // Per image: its first merge unit in the batch, and its units.
        let mut spans = Vec::with_capacity(images.len());
        // Merge units in window order (image order without windows), the
        // windows' and the images' sizes in units, and each row's (row, column).
        let (mut order, mut windows, mut whole) = (Vec::new(), Vec::new(), Vec::new());
        let (mut hpos, mut wpos) = (Vec::new(), Vec::new());
        for &(rows, (t, h, w)) in images {
            let n = t * h * w;
            if t != 1 || rows.len() != n * pw || h % m != 0 || w % m != 0 {
                return Err(ModelError::Unsupported(format!(
                    "{} patch values for a {t}x{h}x{w} grid of {pw}-value patches (one still \
                     image, merge {m})",
                    rows.len()
                )));
            }
            let (uh, uw, base) = (h / m, w / m, flat.len() / pw / unit);
            flat.extend_from_slice(rows);
            let (o, lens) = match self.cfg.window_units() {
                Some(ws) => window_order(uh, uw, ws),
                None => ((0..uh * uw).collect(), vec![uh * uw]),
            };
            for &u in &o {
                for j in 0..unit {
                    hpos.push((u / uw) * m + j / m);
                    wpos.push((u % uw) * m + j % m);
                }
            }
            order.extend(o.iter().map(|u| base + u));
            windows.extend(lens);
            whole.push(uh * uw);
            spans.push((base, uh * uw));
        }
        let n = flat.len() / pw;
        let x = be.upload(&[n, pw], HostData::F32(&flat))?;
        let mut x = be.linear(&x, &self.patch_embed, None)?;
        let permuted = order.iter().enumerate().any(|(i, &u)| i != u);
        if permuted {
            let rows: Vec<usize> = order
                .iter()
                .flat_map(|&u| (0..unit).map(move |j| u * unit + j))
                .collect();
            x = be.gather_rows(&x, &rows)?;
        }
        let rotary = Rotary::sections(&self.freqs, vec![hpos, wpos]);
        let (windows, whole) = (Windows::new(&windows, unit), Windows::new(&whole, unit));
        let windowed = self.cfg.window_units().is_some();
        for (i, b) in self.blocks.iter().enumerate() {
            let y = b.norm1.forward(be, &x)?;
            let q = rotary.apply(be, b.q.forward(be, &y)?, self.cfg.num_heads)?;
            let k = rotary.apply(be, b.k.forward(be, &y)?, self.cfg.num_heads)?;
            let v = b.v.forward(be, &y)?;
            let span = if windowed && !self.cfg.fullatt_block_indexes.contains(&i) {
                &windows
            } else {
                &whole
            };
            let a = span.attention(be, [q, k, v], self.cfg.num_heads, d)?;
            x = be.add(&x, &b.proj.forward(be, &a)?)?;
            let y = b.norm2.forward(be, &x)?;
            let y = match &b.ffn {
                Ffn::Plain(mlp) => mlp.forward(be, &y)?,
                Ffn::Gated(mlp) => mlp.forward(be, &y)?,
            };
            x = be.add(&x, &y)?;
        }
        let x = be.reshape(self.ln_q.forward(be, &x)?, &[n / unit, d * unit])?;
        let x = be.activation(&self.merge_fc1.forward(be, &x)?, Activation::Gelu)?;
        let x = self.merge_fc2.forward(be, &x)?;
        // Each image's units back in image order: unit `u` sits at its place in `order`.
        let mut at = vec![0; order.len()];
        for (i, &u) in order.iter().enumerate() {
            at[u] = i;
        }
        spans
            .iter()
            .map(|&(base, units)| Ok(be.gather_rows(&x, &at[base..base + units])?))
            .collect()
    }
}

/// Windows of consecutive rows as one padded attention batch.
struct Windows {
    /// Rows per window.
    lens: Vec<usize>,
    /// Longest window.
    width: usize,
    /// Row of each padded position (a pad repeats its window's first row).
    padded: Vec<usize>,
    /// Padded position of each row.
    unpad: Vec<usize>,
}

impl Windows {
    fn new(units: &[usize], unit: usize) -> Windows {
        let lens: Vec<usize> = units.iter().map(|u| u * unit).collect();
        let width = lens.iter().copied().max().unwrap_or(0);
        let (mut padded, mut unpad, mut start) = (Vec::new(), Vec::new(), 0);
        for (i, &len) in lens.iter().enumerate() {
            padded.extend((0..width).map(|j| start + if j < len { j } else { 0 }));
            unpad.extend((0..len).map(|j| i * width + j));
            start += len;
        }
        Windows {
            lens,
            width,
            padded,
            unpad,
        }
    }

    /// Attention of `q`, `k`, `v [n, d]` within each window -> `[n, d]`.
    fn attention<B: Backend>(
        &self,
        be: &B,
        qkv: [B::Tensor; 3],
        heads: usize,
        d: usize,
    ) -> Result<B::Tensor> {
        let shape = [self.lens.len(), self.width, d];
        let [q, k, v] = qkv.map(|z| {
            be.gather_rows(&z, &self.padded)
                .and_then(|z| be.reshape(z, &shape))
        });
        let mask = Mask {
            causal: false,
            key_lens: Some(self.lens.clone()),
        };
        let a = be.attention(&q?, &k?, &v?, heads, &mask)?;
        let a = be.reshape(a, &[self.lens.len() * self.width, d])?;
        Ok(be.gather_rows(&a, &self.unpad)?)
    }
}

#[cfg(test)]
mod tests {
    use super::window_order;

    #[test]
    fn windows_cover_the_grid_row_by_row() {
        // A 3x5 grid in 2-unit windows: [0 1 5 6] [2 3 7 8] [4 9] [10 11] [12 13] [14].
        let (order, lens) = window_order(3, 5, 2);
        assert_eq!(order, [0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14]);
        assert_eq!(lens, [4, 4, 2, 2, 2, 1]);
    }
}
