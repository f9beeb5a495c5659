//! Embedding heads: small MLPs over an embedding, the way LAION's aesthetic
//! predictor (an MLP over normalised CLIP ViT-L/14 image embeddings) and
//! LAION's CLIP-based NSFW detector are used.
//!
//! A head is a directory with `config.json` and `model.safetensors`; weight
//! names are the PyTorch `nn.Sequential` state dict's (`layers.0.weight`):
//!
//! ```json
//! { "model_type": "embedding_head", "input_dim": 768, "normalize_input": true,
//!   "layers": [ { "name": "layers.0", "in_features": 768, "out_features": 1024,
//!                 "bias": true, "activation": "relu" }, ... ],
//!   "output_activation": "sigmoid", "output_names": ["nsfw"] }
//! ```
//!
//! `activation` is an HF `hidden_act` name (`relu`, `gelu`, `gelu_new`,
//! `quick_gelu`, `silu`) or null; dropout layers are absent (identity at
//! inference). `output_activation` is null, `sigmoid` or `softmax`, applied to
//! the last layer's outputs. Reference: `torch.nn.Sequential` of
//! `nn.Linear` and activations, as `tests/fixtures/gen_head_fixtures.py` builds
//! them and `scripts/convert-head.py` converts the published heads.
//! A config whose weights have other shapes fails at load, naming the tensor.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use lakecap_kernels::cpu::activation::softmax;
use lakecap_kernels::{Activation, Backend, HostData};
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::hub;
use crate::runtime::{Device, Registry, cached, with_shared_backend};
use crate::weights::{WeightSource, Weights};

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LayerConfig {
    /// Prefix of `{name}.weight` and `{name}.bias`.
    pub name: String,
    pub in_features: usize,
    pub out_features: usize,
    #[serde(default = "yes")]
    pub bias: bool,
    /// HF activation name applied after the layer, or none.
    #[serde(default)]
    pub activation: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputActivation {
    Sigmoid,
    Softmax,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HeadConfig {
    pub model_type: String,
    pub input_dim: usize,
    /// L2-normalise each input vector first (LAION's heads expect unit vectors).
    #[serde(default)]
    pub normalize_input: bool,
    pub layers: Vec<LayerConfig>,
    #[serde(default)]
    pub output_activation: Option<OutputActivation>,
    /// One name per output; default `score` for one output, else `output_0`, ….
    #[serde(default)]
    pub output_names: Option<Vec<String>>,
}

impl HeadConfig {
    /// `dir/config.json`, checked: layer sizes chain from `input_dim`, known
    /// activations, one name per output. Errors name the file and field.
    pub fn load(dir: &Path) -> Result<HeadConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::bad_file(&path, e))?;
        let cfg: HeadConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::bad_file(&path, e))?;
        cfg.check()
            .map_err(|why| ModelError::bad_file(&path, why))?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.model_type != "embedding_head" {
            return Err(format!(
                "model_type is '{}', not 'embedding_head'",
                self.model_type
            ));
        }
        if self.layers.is_empty() {
            return Err("layers is empty".into());
        }
        if self.input_dim == 0 || self.layers.iter().any(|l| l.out_features == 0) {
            return Err("input_dim and every out_features must be at least 1".into());
        }
        let mut width = self.input_dim;
        for (i, l) in self.layers.iter().enumerate() {
            if l.in_features != width {
                return Err(format!(
                    "layers[{i}] ('{}') has in_features {} but its input is {width} wide",
                    l.name, l.in_features
                ));
            }
            if let Some(a) = &l.activation
                && Activation::from_hf(a).is_none()
            {
                return Err(format!(
                    "layers[{i}].activation '{a}' is not one of relu, gelu, gelu_new, quick_gelu, silu"
                ));
            }
            width = l.out_features;
        }
        if let Some(names) = &self.output_names
            && names.len() != width
        {
            return Err(format!(
                "output_names has {} names for {width} outputs",
                names.len()
            ));
        }
        Ok(())
    }

    /// The outputs' names.
    pub fn outputs(&self) -> Vec<String> {
        let n = self.layers.last().map_or(0, |l| l.out_features);
        match &self.output_names {
            Some(names) => names.clone(),
            None if n == 1 => vec!["score".into()],
            None => (0..n).map(|i| format!("output_{i}")).collect(),
        }
    }
}

/// One layer's weights in host memory.
struct HostLinear {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    d_in: usize,
    d_out: usize,
    act: Option<Activation>,
}

/// A loaded head. Its weights stay in host memory and are uploaded with each
/// batch: a head is a few megabytes, so any backend runs it without a worker
/// of its own, on the calling thread.
pub struct Head {
    pub cfg: HeadConfig,
    layers: Vec<HostLinear>,
}

impl Head {
    /// `dir`'s config and weights, each weight's shape checked against the config.
    pub fn load(dir: &Path) -> Result<Head> {
        let cfg = HeadConfig::load(dir)?;
        let w = Weights::open(dir)?;
        let read = |name: String, shape: &[usize]| -> Result<Vec<f32>> {
            let (got, v) = w.read_f32(&name)?;
            if got != shape {
                return Err(ModelError::Weight {
                    name,
                    detail: format!("shape {got:?}, but config.json says {shape:?}"),
                });
            }
            Ok(v)
        };
        let layers = cfg
            .layers
            .iter()
            .map(|l| {
                Ok(HostLinear {
                    w: read(
                        format!("{}.weight", l.name),
                        &[l.out_features, l.in_features],
                    )?,
                    b: match l.bias {
                        true => Some(read(format!("{}.bias", l.name), &[l.out_features])?),
                        false => None,
                    },
                    d_in: l.in_features,
                    d_out: l.out_features,
                    act: l.activation.as_deref().and_then(Activation::from_hf),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Head { cfg, layers })
    }

    /// Outputs of `rows` (each `input_dim` wide) on `device`, one `Vec` per row.
    pub fn forward_on(&self, device: Device, rows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        with_shared_backend!(device, |be| self.forward(be, rows))
    }

    /// Outputs of `rows` on backend `be`.
    pub fn forward<B: Backend>(&self, be: &B, rows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let d = self.cfg.input_dim;
        if let Some(bad) = rows.iter().find(|r| r.len() != d) {
            return Err(ModelError::Unsupported(format!(
                "the head takes {d}-wide vectors, got one of {}",
                bad.len()
            )));
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = rows.concat();
        let mut x = be.upload(&[rows.len(), d], HostData::F32(&flat))?;
        if self.cfg.normalize_input {
            x = be.l2_normalize(&x)?;
        }
        for l in &self.layers {
            let w = be.upload_weight(&[l.d_out, l.d_in], HostData::F32(&l.w))?;
            let b = match &l.b {
                Some(b) => Some(be.upload_weight(&[l.d_out], HostData::F32(b))?),
                None => None,
            };
            x = be.linear(&x, &w, b.as_ref())?;
            if let Some(a) = l.act {
                x = be.activation(&x, a)?;
            }
        }
        let out = be.download(&x)?;
        let width = out.len() / rows.len();
        Ok(out
            .chunks(width)
            .map(|r| match self.cfg.output_activation {
                None => r.to_vec(),
                Some(OutputActivation::Sigmoid) => {
                    r.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
                }
                Some(OutputActivation::Softmax) => {
                    let mut r = r.to_vec();
                    softmax(&mut r);
                    r
                }
            })
            .collect())
    }
}

/// The process-wide head at `id` (a directory, or an id in lakecap's model
/// home), loaded on first use.
pub fn embedding_head(id: &str) -> Result<Arc<Head>> {
    static REG: OnceLock<Registry<Head>> = OnceLock::new();
    cached(&REG, id, Device::CPU, Head::load)
}

/// The config of the head at `id` alone: what planning needs.
pub fn head_config(id: &str) -> Result<HeadConfig> {
    HeadConfig::load(&hub::resolve(id)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakecap_kernels::Cpu;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name)
    }

    /// Parity with PyTorch on the three tiny heads of gen_head_fixtures.py.
    #[test]
    fn heads_match_pytorch() {
        for name in [
            "head-aesthetic-tiny",
            "head-sigmoid-tiny",
            "head-multi-tiny",
        ] {
            let dir = fixture(name);
            let head = Head::load(&dir).unwrap();
            let want: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                    .unwrap();
            let rows =
                |k: &str| -> Vec<Vec<f32>> { serde_json::from_value(want[k].clone()).unwrap() };
            let got = head.forward(&Cpu, &rows("inputs")).unwrap();
            for (g, w) in got.iter().flatten().zip(rows("outputs").iter().flatten()) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{name}: {g} vs {w}"
                );
            }
            assert_eq!(got.len(), 7, "{name}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::read_to_string(fixture("head-multi-tiny").join("config.json")).unwrap();
        for (from, to, says) in [
            (
                "\"in_features\": 17",
                "\"in_features\": 16",
                "layers[1] ('layers.2') has in_features 16 but its input is 17 wide",
            ),
            ("\"gelu\"", "\"tanh\"", "layers[1].activation 'tanh'"),
            (
                "\"text\"",
                "\"text\", \"extra\"",
                "output_names has 4 names for 3 outputs",
            ),
            ("\"embedding_head\"", "\"clip\"", "model_type is 'clip'"),
            (
                "\"out_features\": 3",
                "\"out_features\": 0",
                "every out_features must be at least 1",
            ),
            ("\"softmax\"", "\"tanh\"", "unknown variant `tanh`"),
        ] {
            std::fs::write(dir.path().join("config.json"), base.replacen(from, to, 1)).unwrap();
            let e = HeadConfig::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains("config.json") && e.contains(says), "{e}");
        }
        let head = Head::load(&fixture("head-multi-tiny")).unwrap();
        let e = head
            .forward(&Cpu, &[vec![0.0; 5]])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("takes 24-wide vectors, got one of 5"), "{e}");
        // Weights of another head: the first tensor whose shape differs is named.
        std::fs::write(dir.path().join("config.json"), &base).unwrap();
        std::fs::copy(
            fixture("head-sigmoid-tiny").join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let e = Head::load(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("layers.0.weight") && e.contains("[19, 24]") && e.contains("[17, 24]"),
            "{e}"
        );
    }
}
