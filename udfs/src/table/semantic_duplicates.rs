//! `semantic_duplicates(table, key_col, embedding_col, threshold [, clusters])`:
//! SemDeDup over an embedding column, as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, UInt32Array, UInt64Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use lakecap_models::semdedup::{SemDedupParams, semantic_duplicates_on};

use super::table_args::{
    Computed, SourceColumns, Verdicts, check_vectors, number_arg, resolve, string_arg,
};

/// Table function: semantic deduplication (SemDeDup) of the vectors in
/// `embedding_col` (from `embed_image` or `embed_text`): spherical k-means into
/// `clusters` groups (default √n), then within each cluster, members nearest
/// the centroid first, a member whose cosine with an earlier kept member is at
/// least `threshold` becomes its duplicate.
///
/// One row per input row with a non-NULL key and vector:
/// `(key, cluster, dup_of, similarity)`; `dup_of` is NULL for kept rows.
///
/// ```sql
/// CREATE TABLE e AS SELECT key, embed_image(img) AS v FROM lake;
/// SELECT * FROM lake WHERE key IN
///   (SELECT key FROM semantic_duplicates('e', 'key', 'v', 0.95) WHERE dup_of IS NULL);
/// ```
#[derive(Debug, Default)]
pub struct SemanticDuplicatesFunc;

const USAGE: &str =
    "semantic_duplicates('table', 'key_column', 'embedding_column', threshold [, clusters])";

impl TableFunctionImpl for SemanticDuplicatesFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=5).contains(&exprs.len()) {
            return plan_err!("{USAGE} takes 4 or 5 arguments, got {}", exprs.len());
        }
        let table = string_arg(USAGE, &exprs[0], "table")?;
        let key = string_arg(USAGE, &exprs[1], "key_column")?;
        let emb = string_arg(USAGE, &exprs[2], "embedding_column")?;
        let threshold = match number_arg(&exprs[3]) {
            Some(t) if (-1.0..=1.0).contains(&t) => t as f32,
            _ => {
                return plan_err!(
                    "{USAGE}: threshold must be a cosine similarity from -1 to 1, got {}",
                    exprs[3]
                );
            }
        };
        let clusters = match exprs.get(4).map(number_arg) {
            None => None,
            Some(Some(c)) if c >= 1.0 && c.fract() == 0.0 => Some(c as usize),
            Some(_) => {
                return plan_err!(
                    "{USAGE}: clusters must be a positive integer, got {}",
                    exprs[4]
                );
            }
        };
        let src = resolve(USAGE, &args, &table, &key, &emb)?;
        check_vectors(USAGE, &src)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", src.key.data_type().clone(), false),
            Field::new("cluster", DataType::UInt32, false),
            Field::new("dup_of", src.key.data_type().clone(), true),
            Field::new("similarity", DataType::Float32, true),
        ]));
        Ok(Arc::new(Computed(Box::new(SemanticDuplicatesTable {
            src,
            params: SemDedupParams {
                threshold,
                clusters,
                ..Default::default()
            },
            schema,
        }))))
    }
}

#[derive(Debug)]
struct SemanticDuplicatesTable {
    src: SourceColumns,
    params: SemDedupParams,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl Verdicts for SemanticDuplicatesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let params = self.params.clone();
        let (keys, verdicts) = self
            .src
            .on_vectors(state, "semantic_duplicates", move |device, flat, d| {
                semantic_duplicates_on(device, &flat, d, &params)
            })
            .await?;
        let dup_idx: UInt64Array = verdicts
            .iter()
            .map(|v| v.dup_of.map(|i| i as u64))
            .collect();
        Ok(vec![
            keys.clone(),
            Arc::new(UInt32Array::from_iter_values(
                verdicts.iter().map(|v| v.cluster),
            )),
            take(&keys, &dup_idx, None)?,
            Arc::new(Float32Array::from_iter(
                verdicts
                    .iter()
                    .map(|v| (!v.similarity.is_nan()).then_some(v.similarity)),
            )),
        ])
    }
}
