//! `kmeans(table, key_col, vector_col, k [, options])`: spherical k-means
//! clusters of a vector column, as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use lakecap_models::semdedup::kmeans_on;

use super::table_args::{
    Computed, SourceColumns, Verdicts, check_vectors, number_arg, resolve, string_arg,
};

/// Table function: spherical k-means of the vectors in `vector_col` (from
/// `embed_image` or `embed_text`) into `k` clusters on `lakecap.device`:
/// k-means++ seeding, assignment by cosine, deterministic for a seed.
/// `options`: `'iters=20; seed=0; metric=cosine'` (cosine is the only metric).
///
/// One row per input row with a non-NULL key and vector:
/// `(key, cluster, distance)`, `distance` = 1 − cosine to the cluster's centroid.
///
/// ```sql
/// CREATE TABLE e AS SELECT key, embed_image(img) AS v FROM lake;
/// SELECT cluster, count(*) FROM kmeans('e', 'key', 'v', 50) GROUP BY cluster;
/// ```
#[derive(Debug, Default)]
pub struct KmeansFunc;

const USAGE: &str =
    "kmeans('table', 'key_column', 'vector_column', k [, 'iters=20; seed=0; metric=cosine'])";

/// `iters`, `seed` from `'iters=20; seed=0; metric=cosine'`.
fn options(text: &str) -> Result<(usize, u64)> {
    let (mut iters, mut seed) = (20usize, 0u64);
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return plan_err!("{USAGE}: option '{part}' is not NAME=VALUE");
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "iters" => match v.parse() {
                Ok(n) if n >= 1 => iters = n,
                _ => return plan_err!("{USAGE}: iters must be a positive integer, got '{v}'"),
            },
            "seed" => match v.parse() {
                Ok(n) => seed = n,
                _ => return plan_err!("{USAGE}: seed must be a non-negative integer, got '{v}'"),
            },
            "metric" if v.eq_ignore_ascii_case("cosine") => {}
            "metric" => {
                return plan_err!(
                    "{USAGE}: metric '{v}' is not supported: kmeans is spherical (cosine)"
                );
            }
            other => {
                return plan_err!("{USAGE}: unknown option '{other}' (iters, seed, metric)");
            }
        }
    }
    Ok((iters, seed))
}

impl TableFunctionImpl for KmeansFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=5).contains(&exprs.len()) {
            return plan_err!("{USAGE} takes 4 or 5 arguments, got {}", exprs.len());
        }
        let table = string_arg(USAGE, &exprs[0], "table")?;
        let key = string_arg(USAGE, &exprs[1], "key_column")?;
        let vec = string_arg(USAGE, &exprs[2], "vector_column")?;
        let k = match number_arg(&exprs[3]) {
            Some(k) if k >= 1.0 && k.fract() == 0.0 => k as usize,
            _ => return plan_err!("{USAGE}: k must be a positive integer, got {}", exprs[3]),
        };
        let (iters, seed) = match exprs.get(4) {
            Some(e) => options(&string_arg(USAGE, e, "options")?)?,
            None => options("")?,
        };
        let src = resolve(USAGE, &args, &table, &key, &vec)?;
        check_vectors(USAGE, &src)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", src.key.data_type().clone(), false),
            Field::new("cluster", DataType::UInt32, false),
            Field::new("distance", DataType::Float32, false),
        ]));
        Ok(Arc::new(Computed(Box::new(KmeansTable {
            src,
            k,
            iters,
            seed,
            schema,
        }))))
    }
}

#[derive(Debug)]
struct KmeansTable {
    src: SourceColumns,
    k: usize,
    iters: usize,
    seed: u64,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl Verdicts for KmeansTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let (k, iters, seed) = (self.k, self.iters, self.seed);
        let (keys, clusters) = self
            .src
            .on_vectors(state, "kmeans", move |device, flat, d| {
                kmeans_on(device, &flat, d, k, iters, seed)
            })
            .await?;
        Ok(vec![
            keys,
            Arc::new(UInt32Array::from_iter_values(clusters.iter().map(|c| c.0))),
            Arc::new(Float32Array::from_iter_values(clusters.iter().map(|c| c.1))),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_name_what_is_wrong() {
        assert_eq!(options("").unwrap(), (20, 0));
        assert_eq!(
            options(" iters = 5 ; seed=7; metric=COSINE ").unwrap(),
            (5, 7)
        );
        for (bad, says) in [
            ("iters=0", "iters must be a positive integer"),
            ("seed=-1", "seed must be a non-negative integer"),
            ("metric=l2", "metric 'l2' is not supported"),
            ("depth=3", "unknown option 'depth'"),
            ("iters", "is not NAME=VALUE"),
        ] {
            let e = options(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
