//! `llm(template, arg1, …)`: free-form generation for custom recipes.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};
use lakecap_models::chat::parse_turns;

use super::function::{Model, ModelFunction};
use super::llm_call::{at_least, fill, generate, string_columns, strings_signature};
use crate::common::args::{Rows, arrays};
use crate::common::arrow::column;
use crate::common::memo::SessionMemo;

const USAGE: &str = "llm(template, arg1, …)";

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
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

pub type LlmFunc = Model<Llm>;

/// `llm` under the session's `lakecap.llm.*`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Llm;

#[async_trait]
impl ModelFunction for Llm {
    const NAME: &'static str = "llm";

    fn signature() -> Signature {
        strings_signature()
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        at_least(Self::NAME, USAGE, 1, args.arg_fields.len())?;
        Ok(DataType::Utf8)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let cols = string_columns(&arrays(args)?)?;
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
        let out = generate(rows, convs, &memo.texts).await?;
        Ok(column(
            out.into_iter()
                .map(|o| o.map(|s| s.trim().to_string()))
                .collect(),
        ))
    }
}
