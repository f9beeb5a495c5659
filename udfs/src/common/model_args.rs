//! What every model function shares: signatures over the Arrow types parquet
//! delivers, the model argument (a literal, else the session option), the
//! embedding width for planning, running the model off the tokio threads, a
//! content-keyed memo so no row is computed twice, and the Arrow vector type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, Signature, TypeSignature, Volatility,
};
use lakecap_models::image::decode;
use lakecap_models::{ModelError, embed};
use xxhash_rust::xxh3::Xxh3;

use crate::common::args::{Rows, bytes_rows};
use crate::common::options::ModelSetting;

const IMAGE_TYPES: [DataType; 3] = [
    DataType::Binary,
    DataType::LargeBinary,
    DataType::BinaryView,
];
const TEXT_TYPES: [DataType; 3] = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];

/// A kind of positional argument of a model function.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param {
    Image,
    Text,
}

/// Every combination of the accepted Arrow types for `params`, with and
/// without a trailing model argument. (Async UDFs cannot use `coerce_types`:
/// DataFusion's async wrapper does not forward it.)
pub(crate) fn model_signature(params: &[Param]) -> Signature {
    let mut sigs: Vec<Vec<DataType>> = vec![vec![]];
    for p in params {
        let types = match p {
            Param::Image => &IMAGE_TYPES,
            Param::Text => &TEXT_TYPES,
        };
        sigs = sigs
            .into_iter()
            .flat_map(|s| {
                types.iter().map(move |t| {
                    let mut s = s.clone();
                    s.push(t.clone());
                    s
                })
            })
            .collect();
    }
    let with_model: Vec<Vec<DataType>> = sigs
        .iter()
        .flat_map(|s| {
            TEXT_TYPES.iter().map(move |t| {
                let mut s = s.clone();
                s.push(t.clone());
                s
            })
        })
        .collect();
    Signature::one_of(
        sigs.into_iter()
            .chain(with_model)
            .map(TypeSignature::Exact)
            .collect(),
        Volatility::Immutable,
    )
}

/// The model a call uses: its literal model argument at `index`, else the setting.
pub(crate) fn model_id_at_plan(
    args: &ReturnFieldArgs,
    index: usize,
    setting: &ModelSetting,
) -> Result<String> {
    match args.scalar_arguments.get(index) {
        None => Ok(setting.get()),
        Some(Some(v)) => match v.try_as_str() {
            Some(Some(s)) => Ok(s.to_string()),
            _ => plan_err!("the model argument must be a string literal, got {v}"),
        },
        Some(None) => plan_err!(
            "the model argument must be a string literal (a model id or directory), not a column"
        ),
    }
}

/// The model a running call uses (same rule as at planning).
pub(crate) fn model_id_at_run(
    args: &[ColumnarValue],
    index: usize,
    setting: &ModelSetting,
) -> Result<String> {
    match args.get(index) {
        None => Ok(setting.get()),
        Some(ColumnarValue::Scalar(v)) => match v.try_as_str() {
            Some(Some(s)) => Ok(s.to_string()),
            _ => exec_err!("the model argument must be a non-NULL string"),
        },
        Some(ColumnarValue::Array(_)) => exec_err!("the model argument must be a string literal"),
    }
}

pub(crate) fn model_err(e: ModelError) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// `FixedSizeList<Float32>` of width `dim`, the embedding column type.
pub(crate) fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
    )
}

/// The embedding width of `id`, from its config alone (no weights read).
pub(crate) fn vector_field(name: &str, id: &str, image: bool) -> Result<FieldRef> {
    let dim = embed::embedding_dim(id, image).map_err(|e| DataFusionError::Plan(e.to_string()))?;
    Ok(Arc::new(Field::new(name, vector_type(dim), true)))
}

/// The device `lakecap.device` names; `auto` falling back to the CPU says why, once per process.
pub(crate) fn device(options: &crate::common::options::LakecapOptions) -> Result<embed::Device> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let plan = |e: ModelError| DataFusionError::Plan(e.to_string());
    let (device, why) = embed::Device::parse(&options.device).map_err(plan)?;
    let device = device.with_precision(&options.precision).map_err(plan)?;
    if let Some(why) = why {
        SAID.call_once(|| {
            eprintln!("lakecap: lakecap.device = 'auto' runs models on the CPU: {why}")
        });
    }
    Ok(device)
}

/// Runs blocking work (model loading, decoding) off the tokio worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DataFusionError::Execution(format!("worker task failed: {e}")))
}

/// Results of model calls keyed by (model, input kind, content hash), shared
/// by the functions of one session. DataFusion evaluates a function used in
/// both WHERE and SELECT twice, and recipes embed the same image in several
/// functions; the memo makes each distinct input cost one model call.
/// Bounded: two generations of at most `cap_bytes / 2` each; a full current
/// generation becomes the old one and the old one is dropped.
#[derive(Debug)]
pub struct Memo<V> {
    inner: Mutex<MemoGens<V>>,
    cap_bytes: usize,
}

/// A memoised value and what it costs to keep.
pub trait MemoValue: Clone {
    fn bytes(&self) -> usize;
}

impl MemoValue for Arc<[f32]> {
    fn bytes(&self) -> usize {
        self.len() * 4
    }
}

impl MemoValue for Arc<str> {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// Embeddings by input.
pub type EmbeddingMemo = Memo<Arc<[f32]>>;
/// Generated texts by (model, settings, prompt).
pub type TextMemo = Memo<Arc<str>>;

#[derive(Debug)]
struct MemoGens<V> {
    cur: HashMap<u128, V>,
    old: HashMap<u128, V>,
    cur_bytes: usize,
}

impl<V> Default for MemoGens<V> {
    fn default() -> Self {
        MemoGens {
            cur: HashMap::new(),
            old: HashMap::new(),
            cur_bytes: 0,
        }
    }
}

impl<V: MemoValue> Default for Memo<V> {
    fn default() -> Self {
        Memo::with_capacity(256 << 20)
    }
}

impl<V: MemoValue> Memo<V> {
    pub fn with_capacity(cap_bytes: usize) -> Memo<V> {
        Memo {
            inner: Mutex::default(),
            cap_bytes,
        }
    }

    pub fn key(model: &str, kind: u8, content: &[u8]) -> u128 {
        let mut h = Xxh3::new();
        h.update(model.as_bytes());
        h.update(&[0, kind]);
        h.update(content);
        h.digest128()
    }

    pub(crate) fn get(&self, k: u128) -> Option<V> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g.cur.get(&k) {
            return Some(v.clone());
        }
        let v = g.old.remove(&k)?;
        g.insert(k, v.clone(), self.cap_bytes);
        Some(v)
    }

    pub(crate) fn put(&self, k: u128, v: V) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, v, self.cap_bytes);
    }
}

impl<V: MemoValue> MemoGens<V> {
    fn insert(&mut self, k: u128, v: V, cap: usize) {
        self.cur_bytes += v.bytes() + 48;
        self.cur.insert(k, v);
        if self.cur_bytes > cap / 2 {
            self.old = std::mem::take(&mut self.cur);
            self.cur_bytes = 0;
        }
    }
}

/// The memos of one session.
#[derive(Debug, Default)]
pub struct SessionMemo {
    pub vectors: EmbeddingMemo,
    pub texts: TextMemo,
}

/// Handle for `Eq + Hash` function structs (equal when shared).
#[derive(Debug, Clone, Default)]
pub struct MemoHandle(pub Arc<SessionMemo>);

impl PartialEq for MemoHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MemoHandle {}

impl std::hash::Hash for MemoHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

pub(crate) type Vectors = Vec<Option<Arc<[f32]>>>;

/// What the memo already knows about a batch of inputs.
struct Lookup {
    keys: Vec<Option<u128>>,
    out: Vectors,
    /// The first row of each distinct non-NULL input the memo lacks.
    todo: Vec<usize>,
}

fn lookup(memo: &EmbeddingMemo, model: &str, kind: u8, inputs: &[Option<&[u8]>]) -> Lookup {
    let keys: Vec<Option<u128>> = inputs
        .iter()
        .map(|b| b.map(|b| EmbeddingMemo::key(model, kind, b)))
        .collect();
    let out: Vectors = keys.iter().map(|k| k.and_then(|k| memo.get(k))).collect();
    let mut seen = std::collections::HashSet::new();
    let todo = (0..keys.len())
        .filter(|&i| out[i].is_none() && keys[i].is_some_and(|k| seen.insert(k)))
        .collect();
    Lookup { keys, out, todo }
}

impl Lookup {
    /// Records computed vectors (by row) and answers every row with the same input.
    fn finish(
        mut self,
        memo: &EmbeddingMemo,
        computed: impl IntoIterator<Item = (usize, Vec<f32>)>,
    ) -> Vectors {
        let mut fresh = HashMap::new();
        for (i, v) in computed {
            let v: Arc<[f32]> = v.into();
            let k = self.keys[i].expect("computed rows have inputs");
            memo.put(k, Arc::clone(&v));
            fresh.insert(k, v);
        }
        for (k, o) in self.keys.iter().zip(self.out.iter_mut()) {
            if let (Some(k), None) = (k, &o) {
                *o = fresh.get(k).cloned();
            }
        }
        self.out
    }
}

/// Decodes and preprocesses the images of rows `todo` off the runtime, in
/// parallel (the model worker meanwhile runs other partitions' batches);
/// rows that do not decode get `lakecap.on_error`. Returns the model inputs
/// and their rows.
pub(crate) async fn prepare_images<T: Send + 'static>(
    rows: &Rows<'_>,
    bytes: &[Option<&[u8]>],
    todo: &[usize],
    prep: impl Fn(&lakecap_models::image::DynamicImage) -> T + Send + Sync + 'static,
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
            .map(|b| decode(b, limits).map(|img| prep(&img)))
            .collect::<Vec<_>>()
    })
    .await?;
    let (mut inputs, mut ok) = (Vec::new(), Vec::new());
    for (&i, p) in todo.iter().zip(prepared) {
        if let Some(x) = rows.row(i, p.map_err(Into::into))? {
            inputs.push(x);
            ok.push(i);
        }
    }
    Ok((inputs, ok))
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
    let dev = device(&rows.options)?;
    let embedder = blocking(move || embed::image_embedder(&id, bs, dev))
        .await?
        .map_err(model_err)?;
    let bytes = bytes_rows(col.as_ref())?;
    let l = lookup(memo, model, b'i', &bytes);
    if l.todo.is_empty() {
        return Ok(l.out);
    }
    let emb = Arc::clone(&embedder);
    let (inputs, ok_rows) =
        prepare_images(rows, &bytes, &l.todo, move |img| emb.preprocess(img)).await?;
    let vectors = embedder.embed(inputs).await.map_err(model_err)?;
    Ok(l.finish(memo, ok_rows.into_iter().zip(vectors)))
}

/// Unit-length text embeddings of every row of `col` under `model`.
pub(crate) async fn text_vectors(
    col: &ArrayRef,
    model: &str,
    options: &crate::common::options::LakecapOptions,
    memo: &EmbeddingMemo,
) -> Result<Vectors> {
    let id = model.to_string();
    let (bs, dev) = (options.batch_size, device(options)?);
    let embedder = blocking(move || embed::text_embedder(&id, bs, dev))
        .await?
        .map_err(model_err)?;
    let texts: Vec<Option<&[u8]>> = bytes_rows(col.as_ref())?;
    let l = lookup(memo, model, b't', &texts);
    if l.todo.is_empty() {
        return Ok(l.out);
    }
    // String columns hold valid UTF-8 by Arrow's contract.
    let strs: Vec<&str> = l
        .todo
        .iter()
        .map(|&i| std::str::from_utf8(texts[i].unwrap_or_default()).unwrap_or_default())
        .collect();
    let ids = embedder.tokenize(&strs).map_err(model_err)?;
    let vectors = embedder.embed(ids).await.map_err(model_err)?;
    let todo = l.todo.clone();
    Ok(l.finish(memo, todo.into_iter().zip(vectors)))
}

/// Builds the `FixedSizeList<Float32>(dim)` column.
pub(crate) fn vectors_array(v: &Vectors, dim: usize) -> Result<ArrayRef> {
    let mut flat = Vec::with_capacity(v.len() * dim);
    for x in v {
        match x {
            Some(x) if x.len() == dim => flat.extend_from_slice(x),
            Some(x) => return exec_err!("model produced {} values, expected {dim}", x.len()),
            None => flat.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    let nulls = NullBuffer::from(v.iter().map(Option::is_some).collect::<Vec<_>>());
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    Ok(Arc::new(FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        Some(nulls),
    )?))
}

/// Per-row float vectors of a `FixedSizeList`/`List`/`LargeList` of Float32/Float64.
pub(crate) fn vector_rows(a: &dyn Array) -> Result<Vec<Option<Vec<f32>>>> {
    fn floats(a: &dyn Array) -> Result<Vec<f32>> {
        Ok(match a.data_type() {
            DataType::Float32 => a
                .as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                .values()
                .to_vec(),
            DataType::Float64 => a
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .values()
                .iter()
                .map(|&x| x as f32)
                .collect(),
            other => return exec_err!("vector elements must be Float32 or Float64, got {other}"),
        })
    }
    let get = |i: usize| -> Result<Vec<f32>> {
        match a.data_type() {
            DataType::FixedSizeList(..) => floats(a.as_fixed_size_list().value(i).as_ref()),
            DataType::List(_) => floats(a.as_list::<i32>().value(i).as_ref()),
            DataType::LargeList(_) => floats(a.as_list::<i64>().value(i).as_ref()),
            other => exec_err!("expected a vector (list of floats), got {other}"),
        }
    };
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                Ok(None)
            } else {
                get(i).map(Some)
            }
        })
        .collect()
}

/// The vector width planned for this call (from its return field).
pub(crate) fn dim_of(args: &datafusion::logical_expr::ScalarFunctionArgs) -> Result<usize> {
    match args.return_field.data_type() {
        DataType::FixedSizeList(_, n) => Ok(*n as usize),
        other => exec_err!("expected a vector return type, got {other}"),
    }
}

/// 100 × max(cos, 0), the CLIPScore convention, for unit vectors.
pub(crate) fn clip_score(a: &[f32], b: &[f32]) -> f32 {
    100.0 * a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().max(0.0)
}
