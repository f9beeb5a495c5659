//! Embeddings of a batch's images and texts through the process-wide
//! embedders, each distinct input computed once per session (the memo), and
//! what image models share: decoding and preprocessing off the runtime.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use lakecap_models::image::{DynamicImage, decode};
use lakecap_models::runtime::Device;
use lakecap_models::serve::embed;

use crate::common::args::{RowFailure, Rows, bytes_rows};
use crate::common::memo::{EmbeddingMemo, MemoBatch, memo_key};
use crate::common::model_args::{blocking, model_err};
use crate::common::options::LakecapOptions;

pub(crate) type Vectors = Vec<Option<Arc<[f32]>>>;

/// Decodes and preprocesses the images of rows `todo` off the runtime, in
/// parallel (the model worker meanwhile runs other partitions' batches);
/// rows that do not decode get `lakecap.on_error`. Returns the model inputs
/// and their rows.
pub(crate) async fn prepare_images<T: Send + 'static>(
    rows: &Rows<'_>,
    bytes: &[Option<&[u8]>],
    todo: &[usize],
    prep: impl Fn(&DynamicImage) -> std::result::Result<T, RowFailure> + Send + Sync + 'static,
) -> Result<(Vec<T>, Vec<usize>)> {
    let limits = rows.limits();
    let owned: Vec<Vec<u8>> = todo
        .iter()
        .map(|&i| bytes[i].unwrap_or_default().to_vec())
        .collect();
    let prepared = blocking(move || {
        use rayon::prelude::*;
        owned
            .par_iter()
            .map(|b| {
                decode(b, limits)
                    .map_err(RowFailure::from)
                    .and_then(|img| prep(&img))
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let (mut inputs, mut ok) = (Vec::new(), Vec::new());
    for (&i, p) in todo.iter().zip(prepared) {
        if let Some(x) = rows.row(i, p)? {
            inputs.push(x);
            ok.push(i);
        }
    }
    Ok((inputs, ok))
}

/// The memo batch of `inputs` given to `model` on `device` as `kind` (b'i'
/// image, b't' text, b'n' an image's NSFW score). The device and its
/// precision are part of the key: after `SET lakecap.precision`, rows are
/// computed again.
pub(crate) fn batch<'m>(
    memo: &'m EmbeddingMemo,
    model: &str,
    device: Device,
    kind: u8,
    inputs: &[Option<&[u8]>],
) -> MemoBatch<'m, Arc<[f32]>> {
    let model = format!("{model}|{device:?}");
    let keys = inputs
        .iter()
        .map(|b| b.map(|b| memo_key(&model, kind, b)))
        .collect();
    MemoBatch::new(memo, keys)
}

/// Unit-length image embeddings of every row of `col` under `model`: NULL for
/// NULL, and for undecodable images NULL with a counted warning (or an error
/// under `on_error = 'fail'`). Each distinct image is computed once.
pub(crate) async fn image_vectors(
    rows: &Rows<'_>,
    col: &ArrayRef,
    model: &str,
    memo: &EmbeddingMemo,
) -> Result<Vectors> {
    let id = model.to_string();
    let bs = rows.options.batch_size;
    let dev = rows.options.device();
    let embedder = blocking(move || embed::image_embedder(&id, bs, dev))
        .await?
        .map_err(model_err)?;
    let bytes = bytes_rows(col.as_ref())?;
    let mut batch = batch(memo, model, dev, b'i', &bytes);
    if !batch.todo().is_empty() {
        let emb = Arc::clone(&embedder);
        let (inputs, ok_rows) = prepare_images(rows, &bytes, batch.todo(), move |img| {
            Ok(emb.preprocess(img))
        })
        .await?;
        let vectors = embedder.embed(inputs).await.map_err(model_err)?;
        for (i, v) in ok_rows.into_iter().zip(vectors) {
            batch.put(i, v.into());
        }
    }
    Ok(batch.finish())
}

/// Unit-length text embeddings of every row of `col` under `model`.
pub(crate) async fn text_vectors(
    col: &ArrayRef,
    model: &str,
    options: &LakecapOptions,
    memo: &EmbeddingMemo,
) -> Result<Vectors> {
    let id = model.to_string();
    let (bs, dev) = (options.batch_size, options.device());
    let embedder = blocking(move || embed::text_embedder(&id, bs, dev))
        .await?
        .map_err(model_err)?;
    let texts: Vec<Option<&[u8]>> = bytes_rows(col.as_ref())?;
    let mut batch = batch(memo, model, dev, b't', &texts);
    if !batch.todo().is_empty() {
        let todo = batch.todo().to_vec();
        // String columns hold valid UTF-8 by Arrow's contract.
        let strs: Vec<&str> = todo
            .iter()
            .map(|&i| std::str::from_utf8(texts[i].unwrap_or_default()).unwrap_or_default())
            .collect();
        let ids = embedder.tokenize(&strs).map_err(model_err)?;
        let vectors = embedder.embed(ids).await.map_err(model_err)?;
        for (i, v) in todo.into_iter().zip(vectors) {
            batch.put(i, v.into());
        }
    }
    Ok(batch.finish())
}

/// 100 × max(cos, 0), the CLIPScore convention, for unit vectors.
pub(crate) fn clip_score(a: &[f32], b: &[f32]) -> f32 {
    100.0 * a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().max(0.0)
}
