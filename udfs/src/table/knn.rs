//! `knn(queries, qkey, qvec, corpus, ckey, cvec, k)`: each query's `k`
//! nearest corpus rows by cosine, exact, as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, UInt32Array, UInt64Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, exec_err, plan_err};
use lakecap_models::knn::knn_on;

use super::table_args::{
    Computed, SourceColumns, Verdicts, check_vectors, number_arg, on_device, resolve, string_arg,
};

/// Table function: exact k-nearest-neighbour search by cosine between two
/// vector columns (`embed_image`, `embed_text`; FixedSizeList or List of
/// floats), as blocked GEMMs with a top-k on `lakecap.device`; memory is
/// bounded by the blocks.
///
/// One row per (query, neighbour): `(qkey, ckey, rank, similarity)`, rank 1
/// the most similar (ties to the corpus row read first).
///
/// ```sql
/// SELECT * FROM knn('captions', 'key', 't', 'images', 'key', 'v', 5) WHERE rank = 1;
/// ```
#[derive(Debug, Default)]
pub struct KnnFunc;

const USAGE: &str = "knn('queries', 'qkey', 'qvec', 'corpus', 'ckey', 'cvec', k)";

impl TableFunctionImpl for KnnFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 7 {
            return plan_err!("{USAGE} takes 7 arguments, got {}", exprs.len());
        }
        let s = |i: usize, what: &str| string_arg(USAGE, &exprs[i], what);
        let k = match number_arg(&exprs[6]) {
            Some(k) if (1.0..=10_000.0).contains(&k) && k.fract() == 0.0 => k as usize,
            _ => {
                return plan_err!(
                    "{USAGE}: k must be an integer from 1 to 10000, got {}",
                    exprs[6]
                );
            }
        };
        let queries = resolve(
            USAGE,
            &args,
            &s(0, "queries")?,
            &s(1, "qkey")?,
            &s(2, "qvec")?,
        )?;
        let corpus = resolve(
            USAGE,
            &args,
            &s(3, "corpus")?,
            &s(4, "ckey")?,
            &s(5, "cvec")?,
        )?;
        check_vectors(USAGE, &queries)?;
        check_vectors(USAGE, &corpus)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("qkey", queries.key.data_type().clone(), false),
            Field::new("ckey", corpus.key.data_type().clone(), false),
            Field::new("rank", DataType::UInt32, false),
            Field::new("similarity", DataType::Float32, false),
        ]));
        Ok(Arc::new(Computed(Box::new(KnnTable {
            queries,
            corpus,
            k,
            schema,
        }))))
    }
}

#[derive(Debug)]
struct KnnTable {
    queries: SourceColumns,
    corpus: SourceColumns,
    k: usize,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl Verdicts for KnnTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let (qkeys, q, dq) = self.queries.vectors(state, "knn (queries)").await?;
        let (ckeys, c, dc) = self.corpus.vectors(state, "knn (corpus)").await?;
        if !q.is_empty() && !c.is_empty() && dq != dc {
            return exec_err!("{USAGE}: query vectors have length {dq}, corpus vectors {dc}");
        }
        let k = self.k;
        let found = on_device(state, move |device| knn_on(device, &q, &c, dq, k)).await?;
        let (mut qi, mut ci, mut rank, mut sim) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, neighbours) in found.into_iter().enumerate() {
            for (r, n) in neighbours.into_iter().enumerate() {
                qi.push(i as u64);
                ci.push(n.index as u64);
                rank.push(r as u32 + 1);
                sim.push(n.similarity);
            }
        }
        Ok(vec![
            take(&qkeys, &UInt64Array::from(qi), None)?,
            take(&ckeys, &UInt64Array::from(ci), None)?,
            Arc::new(UInt32Array::from(rank)),
            Arc::new(Float32Array::from(sim)),
        ])
    }
}
