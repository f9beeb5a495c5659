//! What `fuse` and `llm` share: the session's LLM settings, string
//! arguments, prompt placeholders, and generation through the process-wide
//! model with a per-session memo (a row's prompt is generated once however
//! often the query mentions it).

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use lakecap_models::chat::Message;
use lakecap_models::decode::GenParams;
use lakecap_models::serve::llm;

use crate::common::args::{RowFailure, Rows, bytes_rows};
use crate::common::memo::{MemoBatch, TextMemo, memo_key};
use crate::common::model_args::{blocking, model_err};
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
) -> Result<Vec<Option<Arc<str>>>> {
    let o = &rows.options;
    let params = gen_params(o);
    let (id, slots, dev) = (o.llm.model.clone(), o.batch_size, o.device());
    if convs.iter().all(Option::is_none) {
        return Ok(vec![None; convs.len()]);
    }
    let model = blocking(move || llm::llm(&id, slots, dev))
        .await?
        .map_err(model_err)?;
    // The device and precision change the tokens (8-bit x on the CPU's
    // `auto`), so they are part of the key.
    let settings = format!("{}|{dev:?}|{params:?}", model.id);
    let mut prompts = convs
        .iter()
        .map(|c| c.as_ref().map(|c| model.chat_prompt(c)).transpose())
        .collect::<lakecap_models::Result<Vec<Option<String>>>>()
        .map_err(model_err)?;
    let keys = prompts
        .iter()
        .map(|p| p.as_ref().map(|p| memo_key(&settings, b'g', p.as_bytes())))
        .collect();
    let mut batch = MemoBatch::new(memo, keys);
    if !batch.todo().is_empty() {
        let todo = batch.todo().to_vec();
        let todo_prompts: Vec<String> = todo
            .iter()
            .map(|&i| prompts[i].take().unwrap_or_default())
            .collect();
        let done = model
            .complete(&todo_prompts, params)
            .await
            .map_err(model_err)?;
        for (i, r) in todo.into_iter().zip(done) {
            if let Some(c) = rows.row(i, r.map_err(RowFailure::generation))? {
                batch.put(i, c.text.into());
            }
        }
    }
    Ok(batch.finish())
}
