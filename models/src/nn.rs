//! Transformer building blocks shared by every architecture: linear layers,
//! layer norm, multi-head attention, MLP and the encoder layer in its pre-norm
//! (CLIP, ViT) and post-norm (BERT) forms. Models only map their weight names
//! onto these.

use lakecap_kernels::{Activation, Backend, Mask};

use crate::error::Result;
use crate::weights::Weights;

/// `y = x · wᵀ + b` with HF `nn.Linear` weights `[out, in]`.
pub struct Linear<B: Backend> {
    pub w: B::Tensor,
    pub b: Option<B::Tensor>,
}

impl<B: Backend> Linear<B> {
    /// Loads `{prefix}.weight` (and `{prefix}.bias` when `bias`).
    pub fn load(
        be: &B,
        w: &Weights,
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

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(be.linear(x, &self.w, self.b.as_ref())?)
    }
}

pub struct LayerNorm<B: Backend> {
    gamma: B::Tensor,
    beta: B::Tensor,
    eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `{prefix}.weight` and `{prefix}.bias`.
    pub fn load(be: &B, w: &Weights, prefix: &str, d: usize, eps: f64) -> Result<Self> {
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
