//! What the model functions (and `semantic_duplicates`) share: signatures
//! over the Arrow types parquet delivers, the model argument (a literal, else
//! the session option), the embedding width for planning, and running models
//! off the tokio threads.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, Signature, TypeSignature, Volatility,
};
use lakecap_models::ModelError;
use lakecap_models::serve::embed;

use crate::common::arrow::vector_type;
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

/// The embedding type of model `id`, its width from the config alone (no weights read).
pub(crate) fn model_vector_type(id: &str, image: bool) -> Result<DataType> {
    let dim = embed::embedding_dim(id, image).map_err(|e| DataFusionError::Plan(e.to_string()))?;
    Ok(vector_type(dim))
}

/// The vector width planned for this call (from its return field).
pub(crate) fn dim_of(args: &ScalarFunctionArgs) -> Result<usize> {
    match args.return_field.data_type() {
        DataType::FixedSizeList(_, n) => Ok(*n as usize),
        other => exec_err!("expected a vector return type, got {other}"),
    }
}

/// Runs blocking work (model loading, decoding) off the tokio worker threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DataFusionError::Execution(format!("worker task failed: {e}")))
}
