//! `embedding_head(vec, 'dir')`: a small MLP head over an embedding, such as
//! LAION's aesthetic predictor or its CLIP-based NSFW detector.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float32Array, StructArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use lakecap_models::head::{HeadConfig, embedding_head, head_config};

use crate::common::args::arrays;
use crate::common::arrow::vector_rows;
use crate::common::model_args::model_err;
use crate::common::options::LakecapOptions;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "Runs a small MLP head over a vector (an embed_image or embed_text column) on \
         lakecap.device: Float32 for a head with one output, else a \
         struct of its named Float32 outputs. The head is a directory with config.json (input_dim, \
         normalize_input, layers with in_features/out_features/activation, output_activation \
         sigmoid|softmax, output_names) and model.safetensors named as the PyTorch nn.Sequential \
         state dict (layers.0.weight); scripts/convert-head.py converts LAION's aesthetic predictor \
         and NSFW detector. NULL vectors give NULL; a vector whose width differs from the head's \
         input_dim is a plan error (FixedSizeList) or a query error naming the row (List).",
        "embedding_head(vec, 'dir')",
    )
    .with_argument("vec", "A vector: FixedSizeList or List of Float32/Float64.")
    .with_argument("dir", "The head's directory (or an id in lakecap's model home), a literal.")
    .with_sql_example(
        "SELECT key, embedding_head(embed_image(img), 'heads/laion-aesthetic-vit-l-14') AS aesthetic FROM lake;",
    )
    .with_related_udf("embed_image")
    .build()
});

/// The function: synchronous, since it takes another model function's output
/// (`embedding_head(embed_image(img), …)`), and DataFusion runs an async
/// function only at the top of an expression.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbeddingHeadFunc {
    signature: Signature,
}

impl Default for EmbeddingHeadFunc {
    fn default() -> Self {
        // Types are checked in return_field_from_args, with errors naming the argument.
        EmbeddingHeadFunc {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

const USAGE: &str = "embedding_head(vec, 'dir')";

/// The result type of a head: Float32, or a struct of its named outputs.
fn output_type(cfg: &HeadConfig) -> DataType {
    let names = cfg.outputs();
    if names.len() == 1 {
        return DataType::Float32;
    }
    DataType::Struct(Fields::from(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float32, true))
            .collect::<Vec<_>>(),
    ))
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

/// The head directory of a call: its literal second argument.
fn dir_literal(arg: Option<&ScalarValue>) -> Result<String> {
    match arg.map(ScalarValue::try_as_str) {
        Some(Some(Some(s))) => Ok(s.to_string()),
        _ => plan_err!("{USAGE}: dir must be a non-NULL string literal (the head's directory)"),
    }
}

impl ScalarUDFImpl for EmbeddingHeadFunc {
    fn name(&self) -> &str {
        "embedding_head"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        internal_err!("return_field_from_args is used")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let dir = dir_literal(args.scalar_arguments.get(1).copied().flatten())?;
        let cfg = head_config(&dir).map_err(|e| DataFusionError::Plan(e.to_string()))?;
        match args.arg_fields[0].data_type() {
            DataType::FixedSizeList(f, n) if is_float(f.data_type()) => {
                if *n as usize != cfg.input_dim {
                    return plan_err!(
                        "{USAGE}: the head '{dir}' takes {}-wide vectors, but vec is {n} wide",
                        cfg.input_dim
                    );
                }
            }
            DataType::List(f) | DataType::LargeList(f) if is_float(f.data_type()) => {}
            DataType::Null => {}
            other => {
                return plan_err!(
                    "{USAGE}: vec must be a vector (FixedSizeList or List of Float32/Float64), got {other}"
                );
            }
        }
        Ok(Arc::new(Field::new(self.name(), output_type(&cfg), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let dir = match args.args.get(1) {
            Some(ColumnarValue::Scalar(v)) => dir_literal(Some(v))?,
            _ => return exec_err!("{USAGE}: dir must be a string literal"),
        };
        let head = embedding_head(&dir).map_err(model_err)?;
        let vectors = arrays(&args)?;
        if vectors[0].data_type() == &DataType::Null {
            return Ok(ColumnarValue::Array(new_null_array(
                &output_type(&head.cfg),
                args.number_rows,
            )));
        }
        let vectors = vector_rows(vectors[0].as_ref())?;
        let d = head.cfg.input_dim;
        if let Some(row) = vectors
            .iter()
            .position(|v| v.as_ref().is_some_and(|v| v.len() != d))
        {
            let got = vectors[row].as_ref().map_or(0, Vec::len);
            return exec_err!(
                "{USAGE}: row {row}: a {got}-wide vector for a head that takes {d}-wide ones"
            );
        }
        let device = LakecapOptions::from_config(&args.config_options).device();
        let todo: Vec<Vec<f32>> = vectors.iter().flatten().cloned().collect();
        let mut outputs = head
            .forward_on(device, &todo)
            .map_err(model_err)?
            .into_iter();
        let per_row: Vec<Option<Vec<f32>>> = vectors
            .iter()
            .map(|v| v.as_ref().and_then(|_| outputs.next()))
            .collect();
        Ok(ColumnarValue::Array(outputs_array(&head.cfg, &per_row)?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// Float32 for one output, else a struct of the named outputs; NULL rows stay NULL.
fn outputs_array(cfg: &HeadConfig, per_row: &[Option<Vec<f32>>]) -> Result<ArrayRef> {
    let column = |j: usize| -> ArrayRef {
        Arc::new(Float32Array::from_iter(
            per_row.iter().map(|o| o.as_ref().map(|o| o[j])),
        ))
    };
    Ok(match output_type(cfg) {
        DataType::Struct(fields) => {
            let columns = (0..fields.len()).map(column).collect();
            let nulls = per_row.iter().map(Option::is_some).collect::<Vec<_>>();
            Arc::new(StructArray::try_new(fields, columns, Some(nulls.into()))?)
        }
        _ => column(0),
    })
}
