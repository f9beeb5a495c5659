//! `recaption(img [, options])`: a synthetic caption from a BLIP captioner
//! or an instruction VLM (by the model's `config.json`).

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature,
};
use lakecap_models::decode::GenParams;
use lakecap_models::serve::caption::AnyCaptioner;

use super::caption_cache::{CaptionCache, cached_texts};
use super::function::{Model, ModelFunction};
use super::vectors::prepare_images;
use crate::common::args::{RowFailure, Rows, arrays, bytes_rows, option_pairs};
use crate::common::memo::SessionMemo;
use crate::common::model_args::{Param, blocking, model_err, model_signature};

const USAGE: &str = "recaption(img [, 'key=value; …'])";

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "A synthetic caption of the image by a BLIP captioner or an instruction VLM such as \
         Qwen2-VL (lakecap.caption_model, default Salesforce/blip-image-captioning-base; bring \
         its HF files; the architecture comes from its config.json), decoded with continuous \
         batching. Options, as 'key=value' pairs separated by ';': prompt (BLIP: a text prefix \
         such as 'a picture of', kept in the caption as transformers decodes it; a VLM: the \
         instruction, default 'Describe this image in detail.'), max_tokens (default 30 for \
         BLIP, 128 for a VLM), stop (strings separated by '|'), \
         min_tokens, temperature (0: greedy), top_k, top_p, seed, repetition_penalty, \
         no_repeat_ngram_size, beams (beam search as transformers' generate), length_penalty, \
         early_stopping, guidance_scale (classifier-free guidance toward more specific captions, \
         Kornblith et al. 2023: tokens from uncond + scale·(cond − uncond) log-probabilities, \
         the unconditional branch conditioned on the mean image; 1 is off; not with beams; \
         beams and guidance are BLIP's only), \
         model. Unknown keys are errors. Captions are cached on disk by \
         (model, options, image content) unless SET lakecap.cache = off. An undecodable image \
         gives NULL and a counted warning; NULL gives NULL.",
        USAGE,
    )
    .with_argument("img", "Encoded image bytes (Binary, BinaryView).")
    .with_argument("options", "Optional 'key=value; …' string literal.")
    .with_sql_example(
        "SELECT key, alt, recaption(img, 'prompt=a picture of; max_tokens=20') AS caption FROM lake;",
    )
    .with_related_udf("fuse")
    .build()
});

/// Parsed `recaption` options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CaptionOptions {
    pub model: Option<String>,
    pub prompt: String,
    pub params: GenParams,
}

impl CaptionOptions {
    pub fn parse(text: &str) -> std::result::Result<CaptionOptions, String> {
        let mut o = CaptionOptions {
            model: None,
            prompt: String::new(),
            // 0: the captioner's default (caption::default_max_tokens).
            params: GenParams {
                max_new_tokens: 0,
                ..Default::default()
            },
        };
        for pair in option_pairs(text) {
            let (k, v) = pair.map_err(|part| format!("option `{part}` is not key=value"))?;
            let num = |what: &str| -> std::result::Result<f64, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("option {k} needs a non-negative {what}, got `{v}`"))
            };
            let p = &mut o.params;
            match k {
                "prompt" => o.prompt = v.to_string(),
                "model" => o.model = Some(v.to_string()),
                "max_tokens" => p.max_new_tokens = (num("integer")? as usize).max(1),
                "min_tokens" => p.min_new_tokens = num("integer")? as usize,
                "temperature" => p.temperature = num("number")? as f32,
                "top_k" => p.top_k = num("integer")? as usize,
                "top_p" => p.top_p = num("number")?.min(1.0) as f32,
                "seed" => p.seed = num("integer")? as u64,
                "repetition_penalty" => p.repetition_penalty = num("number")? as f32,
                "no_repeat_ngram_size" => p.no_repeat_ngram_size = num("integer")? as usize,
                "beams" | "num_beams" => p.num_beams = (num("integer")? as usize).max(1),
                "length_penalty" => {
                    p.length_penalty = v
                        .parse::<f32>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("option {k} needs a number, got `{v}`"))?
                }
                "early_stopping" => {
                    p.early_stopping = match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("option {k} is true or false, got `{v}`")),
                    }
                }
                "guidance_scale" => p.guidance_scale = num("number")? as f32,
                // `\n` in a stop string is a newline (values are trimmed).
                "stop" => {
                    p.stop = v
                        .split('|')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.replace("\\n", "\n"))
                        .collect()
                }
                other => {
                    return Err(format!(
                        "unknown option `{other}` (prompt, max_tokens, min_tokens, temperature, \
                         top_k, top_p, seed, repetition_penalty, no_repeat_ngram_size, beams, \
                         length_penalty, early_stopping, guidance_scale, stop, model)"
                    ));
                }
            }
        }
        if o.params.num_beams > 1 && o.params.guidance_scale != 1.0 {
            return Err(
                "guidance_scale works with greedy or sampled decoding, not with beams".into(),
            );
        }
        Ok(o)
    }

    /// What the cache key depends on besides the model and the image.
    pub(crate) fn canonical(&self) -> String {
        format!("{}|{:?}", self.prompt, self.params)
    }
}

pub type RecaptionFunc = Model<Recaption>;

/// `recaption` under the session's `lakecap.caption_model` and `lakecap.cache`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Recaption;

/// The options of a call at argument `index`: a string literal, or none.
pub(crate) fn literal_options(
    args: &ScalarFunctionArgs,
    index: usize,
    usage: &str,
) -> Result<CaptionOptions> {
    let text = match args.args.get(index) {
        None => "",
        Some(ColumnarValue::Scalar(v)) => v.try_as_str().flatten().unwrap_or(""),
        Some(ColumnarValue::Array(_)) => return exec_err!("{usage}: options must be a literal"),
    };
    CaptionOptions::parse(text).or_else(|e| exec_err!("{usage}: {e}"))
}

/// Checks a literal options string at argument `index` while planning.
pub(crate) fn plan_options(args: &ReturnFieldArgs, index: usize, usage: &str) -> Result<()> {
    if let Some(v) = args.scalar_arguments.get(index) {
        match v.and_then(|v| v.try_as_str()).flatten() {
            Some(text) => {
                if let Err(e) = CaptionOptions::parse(text) {
                    return plan_err!("{usage}: {e}");
                }
            }
            None => return plan_err!("{usage}: the options must be a string literal"),
        }
    }
    Ok(())
}

#[async_trait]
impl ModelFunction for Recaption {
    const NAME: &'static str = "recaption";

    fn signature() -> Signature {
        model_signature(&[Param::Image])
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    /// Validates a literal options string while planning.
    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        plan_options(args, 1, USAGE)?;
        Ok(DataType::Utf8)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let opts = literal_options(args, 1, USAGE)?;
        let o = &rows.options;
        let model = opts
            .model
            .clone()
            .unwrap_or_else(|| o.caption_model.clone());
        let cols = arrays(args)?;
        let bytes = bytes_rows(cols[0].as_ref())?;
        let canon = opts.canonical();
        let keys = bytes
            .iter()
            .map(|b| b.map(|b| CaptionCache::key(&model, &canon, b)))
            .collect();
        cached_texts(rows, memo, keys, |todo| async move {
            let (id, bs, dev) = (model.clone(), o.batch_size, o.device());
            let cap = blocking(move || AnyCaptioner::get(&id, bs, dev))
                .await?
                .map_err(model_err)?;
            let c = cap.clone();
            let (images, ok) = prepare_images(rows, &bytes, &todo, move |img| {
                c.preprocess(img).map_err(RowFailure::model)
            })
            .await?;
            let captions = cap
                .caption(images, &opts.prompt, opts.params.clone())
                .await
                .map_err(model_err)?;
            Ok(ok
                .into_iter()
                .zip(
                    captions
                        .into_iter()
                        .map(|r| r.map_err(RowFailure::generation)),
                )
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_options() {
        let o = CaptionOptions::parse(
            "prompt=a picture of, maybe; max_tokens=12; temperature=0.7; seed=3",
        )
        .unwrap();
        assert_eq!(o.prompt, "a picture of, maybe");
        assert_eq!((o.params.max_new_tokens, o.params.seed), (12, 3));
        assert_eq!(o.params.temperature, 0.7);
        assert_eq!(CaptionOptions::parse("").unwrap().params.max_new_tokens, 0);
        let s = CaptionOptions::parse("stop=.|\\n").unwrap();
        assert_eq!(s.params.stop, [".", "\n"]);
        let b = CaptionOptions::parse("beams=4; length_penalty=0.6; early_stopping=true").unwrap();
        assert_eq!(
            (
                b.params.num_beams,
                b.params.length_penalty,
                b.params.early_stopping
            ),
            (4, 0.6, true)
        );
        for (bad, why) in [
            ("colour=blue", "unknown option `colour`"),
            ("max_tokens=-3", "non-negative"),
            ("temperature", "not key=value"),
            ("early_stopping=maybe", "true or false"),
            ("guidance_scale=-2", "non-negative"),
            ("guidance_scale=2; beams=2", "not with beams"),
        ] {
            let e = CaptionOptions::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
