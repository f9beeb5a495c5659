//! `llm(template, arg1, …)`: free-form generation for custom recipes.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};
use lakecap_models::chat::parse_turns;

use crate::common::args::{Rows, arrays};
use crate::common::diagnostics::DiagHandle;
use crate::common::model_args::MemoHandle;
use crate::model::llm_call::{
    at_least, fill, generate, string_columns, strings_array, strings_signature,
};

const USAGE: &str = "llm(template, arg1, …)";

pub(crate) static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::LLM,
        "The LLM's reply to a prompt built per row: {1}, {2}, … in the template are replaced by the \
         following arguments. The template may hold [system], [user] and [assistant] sections \
         (few-shot turns) as udfs/prompts/fuse.txt does; it is rendered with the model's chat \
         template. Model, max tokens, temperature, top_p and seed come from lakecap.llm.*; with a \
         temperature above 0 each row samples from its own seeded generator, so results do not \
         depend on batching. A NULL argument gives NULL. Used for VeCLIP-style rewrites, judges \
         and other transforms.",
        USAGE,
    )
    .with_argument("template", "The prompt with {1}, {2}, … placeholders.")
    .with_argument("arg1, …", "Strings substituted into the template.")
    .with_sql_example(
        "SELECT llm('Rewrite as a short caption: {1}', alt) AS caption FROM lake;",
    )
    .with_related_udf("fuse")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LlmFunc {
    signature: Signature,
    memo: MemoHandle,
    diag: DiagHandle,
}

impl LlmFunc {
    pub fn new(memo: MemoHandle, diag: DiagHandle) -> Self {
        Self {
            signature: strings_signature(),
            memo,
            diag,
        }
    }
}

impl ScalarUDFImpl for LlmFunc {
    fn name(&self) -> &str {
        "llm"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        at_least("llm", USAGE, 1, args.len())?;
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("llm is async")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for LlmFunc {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cols = string_columns(&arrays(&args)?)?;
        let rows = Rows::new("llm", &args, 0, &self.diag.0);
        let convs = (0..cols[0].len())
            .map(|i| {
                let values: Option<Vec<String>> = cols.iter().map(|c| c[i].clone()).collect();
                let values = values?;
                let names: Vec<String> = (1..values.len()).map(|k| k.to_string()).collect();
                let pairs: Vec<(&str, &str)> = names
                    .iter()
                    .map(String::as_str)
                    .zip(values[1..].iter().map(String::as_str))
                    .collect();
                Some(parse_turns(&fill(&values[0], &pairs)))
            })
            .collect();
        let out = generate(&rows, convs, &self.memo.0.texts).await?;
        Ok(ColumnarValue::Array(strings_array(
            out.into_iter()
                .map(|o| o.map(|s| s.trim().to_string()))
                .collect(),
        )))
    }
}
