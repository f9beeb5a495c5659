//! `lakecap.*` session options, a DataFusion config extension.

use std::any::Any;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

use datafusion::common::config::{
    ConfigEntry, ConfigExtension, ConfigField, ExtensionOptions, Visit,
};
use datafusion::common::{DataFusionError, Result, extensions_options};
use datafusion::config::ConfigOptions;
use lakecap_models::ModelError;
use lakecap_models::image::DecodeLimits;
use lakecap_models::runtime::{Device, Precision};

/// What a function does with a row it cannot process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// NULL for that row and a counted warning.
    #[default]
    Null,
    /// Fail the query with an error naming the function, column and row.
    Fail,
}

impl FromStr for OnError {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "null" => Ok(OnError::Null),
            "fail" => Ok(OnError::Fail),
            other => Err(DataFusionError::Configuration(format!(
                "lakecap.on_error must be 'null' or 'fail', got '{other}'"
            ))),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Null => "null",
            OnError::Fail => "fail",
        })
    }
}

impl ConfigField for OnError {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        *self = value.parse()?;
        Ok(())
    }
}

/// `on` / `off`, as in `SET lakecap.cache = off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Switch {
    #[default]
    On,
    Off,
}

impl FromStr for Switch {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" => Ok(Switch::On),
            "off" | "false" => Ok(Switch::Off),
            other => Err(DataFusionError::Configuration(format!(
                "expected 'on' or 'off', got '{other}'"
            ))),
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Switch::On => "on",
            Switch::Off => "off",
        })
    }
}

impl ConfigField for Switch {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        *self = value.parse()?;
        Ok(())
    }
}

fn config_err(e: ModelError) -> DataFusionError {
    DataFusionError::Configuration(e.to_string())
}

/// `lakecap.device`, parsed (by `lakecap-models`) when set, so that a bad
/// value fails the `SET` itself. `None` is `auto`, resolved when a model
/// first runs: resolving it probes CUDA's libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSetting(Option<Device>);

impl DeviceSetting {
    /// The device (its precision is [`PrecisionSetting`]'s to say).
    fn resolve(self) -> Device {
        self.0.unwrap_or_else(auto_device)
    }
}

/// What `auto` means here: CUDA device 0 when it can be loaded, else the CPU,
/// saying why once. Probed once per process.
fn auto_device() -> Device {
    static AUTO: OnceLock<Device> = OnceLock::new();
    *AUTO.get_or_init(|| {
        // `auto` always parses.
        let (device, why) = Device::parse("auto").unwrap_or((Device::CPU, None));
        if let Some(why) = why {
            eprintln!("lakecap: lakecap.device = 'auto' runs models on the CPU: {why}");
        }
        device
    })
}

impl fmt::Display for DeviceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("auto"),
            Some(Device::Cpu(_)) => f.write_str("cpu"),
            Some(Device::Cuda(n, _)) => write!(f, "cuda:{n}"),
        }
    }
}

impl ConfigField for DeviceSetting {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        let value = value.trim().to_ascii_lowercase();
        self.0 = match value.as_str() {
            "auto" => None,
            other => Some(Device::parse(other).map_err(config_err)?.0),
        };
        Ok(())
    }
}

/// `lakecap.precision`, parsed (by `lakecap-models`) when set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrecisionSetting(Precision);

impl fmt::Display for PrecisionSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The variants' names are the canonical values (`Bf16` is 'bf16').
        f.write_str(&format!("{:?}", self.0).to_ascii_lowercase())
    }
}

impl ConfigField for PrecisionSetting {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        self.0 = Precision::from_str(value).map_err(|e| config_err(ModelError::Unsupported(e)))?;
        Ok(())
    }
}

/// A model id (`ORG/NAME` or a directory) whose current value the model
/// functions read while a query is planned: a function's return type (the
/// embedding width) depends on the model, and DataFusion gives return-type
/// hooks no access to session options. The value lives behind an `Arc` shared
/// by every clone of the session's options and by the functions registered
/// into that session, so `SET lakecap.clip_model = ...` is seen at planning.
#[derive(Debug, Clone)]
pub struct ModelSetting(Arc<RwLock<String>>);

impl ModelSetting {
    pub fn new(id: &str) -> ModelSetting {
        ModelSetting(Arc::new(RwLock::new(id.to_string())))
    }

    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl PartialEq for ModelSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ModelSetting {}

impl std::hash::Hash for ModelSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

impl fmt::Display for ModelSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.get())
    }
}

impl ConfigField for ModelSetting {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }
    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        if value.is_empty() {
            return Err(DataFusionError::Configuration(
                "a model option needs a model id (ORG/NAME) or a directory".into(),
            ));
        }
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value.to_string();
        Ok(())
    }
}

/// A nested `lakecap.<namespace>.*` group of options. (`extensions_options!`
/// visits nested structs without their key prefix, so this writes the
/// `ConfigField` impl that keeps `lakecap.llm.model` a full key.)
macro_rules! namespace {
    ($(#[$meta:meta])* $name:ident { $($(#[doc = $d:literal])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $($(#[doc = $d])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl ConfigField for $name {
            fn visit<V: Visit>(&self, v: &mut V, key: &str, _: &'static str) {
                $(self.$field.visit(v, &format!("{key}.{}", stringify!($field)), concat!($($d),*).trim());)*
            }

            fn set(&mut self, key: &str, value: &str) -> Result<()> {
                let (k, rest) = key.split_once('.').unwrap_or((key, ""));
                match k {
                    $(stringify!($field) => self.$field.set(rest, value),)*
                    _ => Err(DataFusionError::Configuration(format!(
                        "unknown option '{k}' in {}", stringify!($name)
                    ))),
                }
            }
        }
    };
}

/// The default captioner: users bring its weights (no hub here).
pub const DEFAULT_CAPTION_MODEL: &str = "Salesforce/blip-image-captioning-base";
/// The default LLM (real weights from scripts/fetch-models.sh).
pub const DEFAULT_LLM_MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
/// The fusion prompt shipped with lakecap (`udfs/prompts/fuse.txt`).
pub const DEFAULT_FUSE_PROMPT: &str = include_str!("../../prompts/fuse.txt");

namespace! {
    /// `lakecap.vlm.*`: the vision-language model of `vlm()`.
    VlmOptions {
        /// VLM for vlm(): an id (ORG/NAME) in lakecap's model home or the Hugging Face cache, or a directory (Qwen2-VL, Qwen2.5-VL, LLaVA-1.5, SmolVLM).
        model: String = DEFAULT_VLM_MODEL.to_string(),
    }
}

namespace! {
    /// `lakecap.llm.*`: the model and sampling of `fuse` and `llm`.
    LlmOptions {
        /// LLM for fuse and llm: an id (ORG/NAME) in lakecap's model home or the Hugging Face cache, a directory (HF safetensors) or a .gguf file.
        model: String = DEFAULT_LLM_MODEL.to_string(),
        /// Most tokens generated per row.
        max_tokens: usize = 96,
        /// 0 is greedy decoding; above 0 samples with top_p and seed.
        temperature: f64 = 0.0,
        /// Nucleus sampling mass (with temperature > 0).
        top_p: f64 = 1.0,
        /// Sampling seed; each row mixes in its prompt, so results do not depend on batching.
        seed: u64 = 0,
    }
}

namespace! {
    /// `lakecap.fuse.*`: caption fusion.
    FuseOptions {
        /// The fusion prompt: `[system]`/`[user]`/`[assistant]` sections (few-shot turns) with {alt}, {caption} and {extra} placeholders; see udfs/prompts/fuse.txt.
        prompt: String = DEFAULT_FUSE_PROMPT.to_string(),
    }
}

/// The default VLM: users bring their own weights (no hub here).
pub const DEFAULT_VLM_MODEL: &str = "Qwen/Qwen2-VL-2B-Instruct";
/// The default CLIP model: users bring their own weights (no hub here).
pub const DEFAULT_CLIP_MODEL: &str = "openai/clip-vit-base-patch32";
/// The default NSFW classifier (real weights from scripts/fetch-models.sh).
pub const DEFAULT_NSFW_MODEL: &str = lakecap_models::serve::nsfw::DEFAULT_NSFW_MODEL;
/// The default sentence encoder (real weights from scripts/fetch-models.sh).
pub const DEFAULT_TEXT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

extensions_options! {
    /// The fields of [`LakecapOptions`].
    pub struct LakecapSettings {
        /// 'null': a row a function cannot process gives NULL and a counted warning; 'fail': the query fails.
        pub on_error: OnError, default = OnError::Null
        /// Largest image (width x height) any function decodes; larger headers are refused unread.
        pub max_pixels: u64, default = DecodeLimits::default().max_pixels
        /// Largest encoded image, in bytes, any function accepts.
        pub max_image_bytes: u64, default = DecodeLimits::default().max_bytes
        /// Column that names a row in warnings and errors (`key = 'abc'`) wherever a query's input has it; empty: rows are named by their number in a batch.
        pub key_column: String, default = "key".to_string()
        /// CLIP model for embed_image and clip_score: an id (ORG/NAME) in lakecap's model home or the Hugging Face cache, or a directory.
        pub clip_model: ModelSetting, default = ModelSetting::new(DEFAULT_CLIP_MODEL)
        /// Model for embed_text (a sentence encoder such as all-MiniLM-L6-v2, or a CLIP model for its text tower).
        pub text_model: ModelSetting, default = ModelSetting::new(DEFAULT_TEXT_MODEL)
        /// Model for nsfw_score: Yahoo's open_nsfw ONNX graph (from scripts/fetch-models.sh), an id or a directory.
        pub nsfw_model: ModelSetting, default = ModelSetting::new(DEFAULT_NSFW_MODEL)
        /// Rows per model batch; batches are formed across concurrent partitions. Read when a model is first loaded.
        pub batch_size: usize, default = 32
        /// Where models run: 'auto' (the first GPU when CUDA can be loaded, else the CPU), 'cpu', 'cuda' or 'cuda:N'.
        pub device: DeviceSetting, default = DeviceSetting::default()
        /// What model weights are kept in on a GPU: 'auto' (as the checkpoint stores them: f16/bf16 files run half-precision GEMMs, f32 files TF32), 'f32' (exact, for parity with the CPU), 'f16' or 'bf16' (weight matrices converted at load; f32 accumulation). On the CPU, 'auto' multiplies GGUF Q4_0/Q4_1/Q8_0/Q4_K/Q6_K blocks by 8-bit activations as llama.cpp does and bf16 checkpoints by bf16 GEMMs (AMX or AVX512-BF16); 'f32' keeps activations f32; 'bf16' also keeps f32/f16 weight matrices in bf16.
        pub precision: PrecisionSetting, default = PrecisionSetting::default()
        /// Captioner for recaption, a BLIP or a VLM (Qwen2-VL) checkpoint: an id (ORG/NAME) in lakecap's model home or the Hugging Face cache, or a directory.
        pub caption_model: String, default = DEFAULT_CAPTION_MODEL.to_string()
        /// 'on': captions are kept on disk ($LAKECAP_HOME/cache/captions) by (model, options, image content), so reruns never recompute one; 'off': not read or written.
        pub cache: Switch, default = Switch::On
        /// Folder of the caption cache; empty: $LAKECAP_HOME/cache/captions.
        pub cache_dir: String, default = String::new()
        /// LLM model and sampling (lakecap.llm.model, .max_tokens, .temperature, .top_p, .seed).
        pub llm: LlmOptions, default = LlmOptions::default()
        /// Vision-language model of vlm() (lakecap.vlm.model).
        pub vlm: VlmOptions, default = VlmOptions::default()
        /// Caption fusion (lakecap.fuse.prompt).
        pub fuse: FuseOptions, default = FuseOptions::default()
    }
}

/// lakecap's options, set with `SET lakecap.<name> = <value>`, in `lakecap.toml`
/// or as `LAKECAP_<NAME>` environment variables; the fields are [`LakecapSettings`].
///
/// `extensions_options!` lists its entries without the prefix, so a key it
/// lists (`on_error`) would not name the option anywhere entries are read
/// back as keys: `SHOW lakecap.on_error`, `information_schema.df_settings`,
/// and the settings a Ballista client sends its cluster. This lists them
/// whole (`lakecap.on_error`).
#[derive(Debug, Clone, Default)]
pub struct LakecapOptions(LakecapSettings);

impl std::ops::Deref for LakecapOptions {
    type Target = LakecapSettings;
    fn deref(&self) -> &LakecapSettings {
        &self.0
    }
}

impl std::ops::DerefMut for LakecapOptions {
    fn deref_mut(&mut self) -> &mut LakecapSettings {
        &mut self.0
    }
}

impl ExtensionOptions for LakecapOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        ExtensionOptions::set(&mut self.0, key, value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let mut entries = ExtensionOptions::entries(&self.0);
        for e in &mut entries {
            e.key = format!("{}.{}", Self::PREFIX, e.key);
        }
        entries
    }
}

impl ConfigExtension for LakecapOptions {
    const PREFIX: &'static str = "lakecap";
}

impl LakecapOptions {
    /// The options of a running query (defaults when the extension is not registered).
    pub fn from_config(config: &ConfigOptions) -> LakecapOptions {
        config
            .extensions
            .get::<LakecapOptions>()
            .cloned()
            .unwrap_or_default()
    }

    /// Where models run: `lakecap.device` at `lakecap.precision`.
    pub fn device(&self) -> Device {
        match self.device.resolve() {
            Device::Cpu(_) => Device::cpu(self.precision.0),
            Device::Cuda(n, _) => Device::Cuda(n, self.precision.0),
        }
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
            max_bytes: self.max_image_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_precision_are_checked_when_set() {
        let mut o = LakecapOptions::default();
        assert_eq!(
            (o.device.to_string(), o.precision.to_string()),
            ("auto".into(), "auto".into())
        );
        o.set("device", " CUDA ").unwrap();
        o.set("precision", "fp16").unwrap();
        assert_eq!(
            (o.device.to_string(), o.precision.to_string()),
            ("cuda:0".into(), "f16".into())
        );
        assert_eq!(o.device(), Device::Cuda(0, Precision::F16));
        o.set("device", "cpu").unwrap();
        assert_eq!(o.device(), Device::CPU);
        o.set("precision", "f32").unwrap();
        assert_eq!(o.device(), Device::Cpu(Precision::F32));
        o.set("precision", "bf16").unwrap();
        assert_eq!(o.device(), Device::Cpu(Precision::Bf16));
        o.set("precision", "f16").unwrap();
        assert_eq!(o.device(), Device::CPU);
        let e = o.set("precision", "f8").unwrap_err().to_string();
        assert!(
            e.contains("precision `f8`: use 'auto', 'f32', 'f16' or 'bf16'"),
            "{e}"
        );
        let e = o.set("device", "gpu9").unwrap_err().to_string();
        assert!(
            e.contains("device `gpu9`: use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
            "{e}"
        );
        // A refused value leaves the option as it was.
        assert_eq!(
            (o.device.to_string(), o.precision.to_string()),
            ("cpu".into(), "f16".into())
        );
    }
}
