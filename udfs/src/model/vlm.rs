//! `vlm(img, prompt [, options])`: an instruction VLM's reply to a prompt
//! about the image.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};
use lakecap_models::serve::vlm::vlm;

use super::caption_cache::{CaptionCache, cached_texts};
use super::function::{Model, ModelFunction};
use super::llm_call::string_columns;
use super::recaption::{literal_options, plan_options};
use super::vectors::prepare_images;
use crate::common::args::{RowFailure, Rows, arrays, bytes_rows};
use crate::common::memo::SessionMemo;
use crate::common::model_args::{Param, blocking, model_err, model_signature};

const USAGE: &str = "vlm(img, prompt [, 'key=value; …'])";

/// Tokens a reply may take when the options do not say.
const MAX_TOKENS: usize = 64;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::LLM,
        "The reply of an instruction vision-language model (Qwen2-VL, Qwen2.5-VL, LLaVA-1.5, SmolVLM; lakecap.vlm.model, default \
         Qwen/Qwen2-VL-2B-Instruct; bring its HF files) to a prompt about the image, through the \
         model's chat template, decoded with continuous batching (each image encoded once). \
         Options, as 'key=value' pairs separated by ';': model, max_tokens (default 64), \
         min_tokens, temperature (0: greedy), top_k, top_p, seed, repetition_penalty, stop \
         (strings separated by '|'). Replies are cached on disk by (model, options, prompt, image \
         content) unless SET lakecap.cache = off. A NULL image or prompt gives NULL; an \
         undecodable image gives NULL and a counted warning.",
        USAGE,
    )
    .with_argument("img", "Encoded image bytes (Binary, BinaryView).")
    .with_argument("prompt", "The question or instruction (a string column or literal).")
    .with_argument("options", "Optional 'key=value; …' string literal.")
    .with_sql_example(
        "SELECT key, vlm(img, 'Is there text in this image? Answer yes or no.', 'max_tokens=3') FROM lake;",
    )
    .with_related_udf("recaption")
    .build()
});

pub type VlmFunc = Model<Vlm>;

/// `vlm` under the session's `lakecap.vlm.model` and `lakecap.cache`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Vlm;

#[async_trait]
impl ModelFunction for Vlm {
    const NAME: &'static str = "vlm";

    fn signature() -> Signature {
        model_signature(&[Param::Image, Param::Text])
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        plan_options(args, 2, USAGE)?;
        Ok(DataType::Utf8)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let mut opts = literal_options(args, 2, USAGE)?;
        let p = &mut opts.params;
        if !opts.prompt.is_empty() || p.num_beams > 1 || p.guidance_scale != 1.0 {
            return exec_err!(
                "{USAGE}: the prompt is the second argument; beams and guidance_scale are \
                 recaption's with a BLIP model"
            );
        }
        if p.max_new_tokens == 0 {
            p.max_new_tokens = MAX_TOKENS;
        }
        let o = &rows.options;
        let model = opts.model.clone().unwrap_or_else(|| o.vlm.model.clone());
        let cols = arrays(args)?;
        let bytes = bytes_rows(cols[0].as_ref())?;
        let prompts = string_columns(&cols[1..2])?.remove(0);
        let canon = opts.canonical();
        let keys = bytes
            .iter()
            .zip(&prompts)
            .map(|(b, p)| {
                let (b, p) = (b.as_ref()?, p.as_ref()?);
                Some(CaptionCache::key(&model, &format!("vlm|{canon}|{p}"), b))
            })
            .collect();
        cached_texts(rows, memo, keys, |todo| async move {
            let (id, bs, dev) = (model.clone(), o.batch_size, o.device());
            let v = blocking(move || vlm(&id, bs, dev))
                .await?
                .map_err(model_err)?;
            let c = std::sync::Arc::clone(&v);
            let (images, ok) = prepare_images(rows, &bytes, &todo, move |img| {
                c.preprocess(img).map_err(RowFailure::model)
            })
            .await?;
            let requests = images
                .into_iter()
                .zip(&ok)
                .map(|(im, &i)| (im, prompts[i].clone().unwrap_or_default()))
                .collect();
            let replies = v
                .ask(requests, opts.params.clone())
                .await
                .map_err(model_err)?;
            Ok(ok
                .into_iter()
                .zip(replies)
                .map(|(i, r)| (i, r.map(|c| c.text).map_err(RowFailure::generation)))
                .collect())
        })
        .await
    }
}
