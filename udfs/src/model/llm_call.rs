//! What `fuse` and `llm` share: the session's LLM settings, string
//! arguments, prompt placeholders, and generation through the process-wide
//! model with a per-session memo (a row's prompt is generated once however
//! often the query mentions it).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use lakecap_models::chat::Message;
use lakecap_models::generate::GenParams;
use lakecap_models::llm;

use crate::common::args::{RowFailure, Rows, bytes_rows};
use crate::common::model_args::{TextMemo, blocking, device, model_err};
use crate::common::options::LakecapOptions;

/// One or more string arguments (all coerced to one string type).
pub(crate) fn strings_signature() -> Signature {
    Signature::one_of(
        vec![TypeSignature::Variadic(vec![
            DataType::Utf8,
            DataType::LargeUtf8,
            DataType::Utf8View,
        ])],
        Volatility::Immutable,
    )
}

/// Plan-time check of the argument count.
pub(crate) fn at_least(name: &str, usage: &str, n: usize, got: usize) -> Result<()> {
    if got < n {
        return plan_err!("{name} needs at least {n} arguments: {usage}");
    }
    Ok(())
}

/// Each argument column as per-row optional strings.
pub(crate) fn string_columns(cols: &[ArrayRef]) -> Result<Vec<Vec<Option<String>>>> {
    cols.iter()
        .map(|c| {
            Ok(bytes_rows(c.as_ref())?
                .into_iter()
                // String columns hold valid UTF-8 by Arrow's contract.
                .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect())
        })
        .collect()
}

/// `text` with each `{name}` replaced by its value.
pub(crate) fn fill(text: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

/// The generation settings of `lakecap.llm.*`.
pub(crate) fn gen_params(o: &LakecapOptions) -> GenParams {
    GenParams {
        max_new_tokens: o.llm.max_tokens.max(1),
        temperature: o.llm.temperature as f32,
        top_p: o.llm.top_p as f32,
        seed: o.llm.seed,
        ..Default::default()
    }
}

/// Generates a reply to each conversation (`None` rows stay `None`) with
/// `lakecap.llm.model`. A row that cannot be generated (a prompt longer than
/// the context) is NULL with a counted warning, or fails the query under
/// `on_error = 'fail'`.
pub(crate) async fn generate(
    rows: &Rows<'_>,
    convs: Vec<Option<Vec<Message>>>,
    memo: &TextMemo,
) -> Result<Vec<Option<String>>> {
    let o = &rows.options;
    let params = gen_params(o);
    let (id, slots, dev) = (o.llm.model.clone(), o.batch_size, device(o)?);
    let mut out: Vec<Option<String>> = vec![None; convs.len()];
    if convs.iter().all(Option::is_none) {
        return Ok(out);
    }
    let model = blocking(move || llm::llm(&id, slots, dev))
        .await?
        .map_err(model_err)?;
    let settings = format!("{}|{params:?}", model.id);
    let mut keys = vec![None; convs.len()];
    let mut todo: Vec<(usize, String)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in convs.iter().enumerate() {
        let Some(c) = c else { continue };
        let prompt = model.chat_prompt(c).map_err(model_err)?;
        let k = TextMemo::key(&settings, b'g', prompt.as_bytes());
        keys[i] = Some(k);
        match memo.get(k) {
            Some(v) => out[i] = Some(v.to_string()),
            None if seen.insert(k) => todo.push((i, prompt)),
            None => {}
        }
    }
    if !todo.is_empty() {
        let prompts: Vec<String> = todo.iter().map(|(_, p)| p.clone()).collect();
        let done = model.complete(&prompts, params).await.map_err(model_err)?;
        for ((i, _), r) in todo.iter().zip(done) {
            let failure = |e: lakecap_models::ModelError| RowFailure {
                kind: "generation",
                message: e.to_string(),
            };
            if let Some(c) = rows.row(*i, r.map_err(failure))? {
                let text: Arc<str> = c.text.into();
                memo.put(keys[*i].expect("a key"), Arc::clone(&text));
                out[*i] = Some(text.to_string());
            }
        }
    }
    // Rows that repeat an input computed in this batch.
    for (o, k) in out.iter_mut().zip(&keys) {
        if o.is_none()
            && let Some(v) = k.and_then(|k| memo.get(k))
        {
            *o = Some(v.to_string());
        }
    }
    Ok(out)
}

pub(crate) fn strings_array(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
