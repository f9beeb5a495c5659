//! `kmeans(table, key_col, vector_col, k [, options])`: spherical k-means
//! clusters of a vector column, as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, ListArray, UInt32Array, UInt64Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use lakecap_models::semdedup::kmeans_on;

use crate::common::args::option_pairs;

use super::table_args::{
    Computed, SourceColumns, Verdicts, check_vectors, number_arg, resolve, string_arg,
};

/// Table function: spherical k-means of the vectors in `vector_col` (from
/// `embed_image` or `embed_text`) into `k` clusters on `lakecap.device`:
/// k-means++ seeding, assignment by cosine, deterministic for a seed.
/// `options`: `'iters=20; seed=0; metric=cosine; output=rows'` (cosine is
/// the only metric).
///
/// `output=rows`: one row per input row with a non-NULL key and vector,
/// `(key, cluster, distance)`, `distance` = 1 − cosine to the cluster's centroid.
/// `output=centroids`: one row per non-empty cluster, `(cluster, size,
/// centroid)`, the unit centroid as `List<Float32>` (for `knn`, `cosine`).
/// The same seed gives the same clusters in both.
///
/// ```sql
/// CREATE TABLE e AS SELECT key, embed_image(img) AS v FROM lake;
/// SELECT cluster, count(*) FROM kmeans('e', 'key', 'v', 50) GROUP BY cluster;
/// CREATE TABLE c AS SELECT * FROM kmeans('e', 'key', 'v', 50, 'output=centroids');
/// ```
#[derive(Debug, Default)]
pub struct KmeansFunc;

const USAGE: &str = "kmeans('table', 'key_column', 'vector_column', k [, 'iters=20; seed=0; metric=cosine; output=rows|centroids'])";

/// `iters`, `seed` and whether centroids are the output, from the options text.
fn options(text: &str) -> Result<(usize, u64, bool)> {
    let (mut iters, mut seed, mut centroids) = (20usize, 0u64, false);
    for pair in option_pairs(text) {
        let (k, v) = match pair {
            Ok(kv) => kv,
            Err(part) => return plan_err!("{USAGE}: option '{part}' is not NAME=VALUE"),
        };
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
            "output" if v.eq_ignore_ascii_case("rows") => centroids = false,
            "output" if v.eq_ignore_ascii_case("centroids") => centroids = true,
            "output" => {
                return plan_err!("{USAGE}: output must be rows or centroids, got '{v}'");
            }
            "metric" => {
                return plan_err!(
                    "{USAGE}: metric '{v}' is not supported: kmeans is spherical (cosine)"
                );
            }
            other => {
                return plan_err!(
                    "{USAGE}: unknown option '{other}' (iters, seed, metric, output)"
                );
            }
        }
    }
    Ok((iters, seed, centroids))
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
        let (iters, seed, centroids) = match exprs.get(4) {
            Some(e) => options(&string_arg(USAGE, e, "options")?)?,
            None => options("")?,
        };
        let src = resolve(USAGE, &args, &table, &key, &vec)?;
        check_vectors(USAGE, &src)?;
        let schema = Arc::new(Schema::new(if centroids {
            vec![
                Field::new("cluster", DataType::UInt32, false),
                Field::new("size", DataType::UInt64, false),
                Field::new(
                    "centroid",
                    DataType::new_list(DataType::Float32, false),
                    false,
                ),
            ]
        } else {
            vec![
                Field::new("key", src.key.data_type().clone(), false),
                Field::new("cluster", DataType::UInt32, false),
                Field::new("distance", DataType::Float32, false),
            ]
        }));
        Ok(Arc::new(Computed(Box::new(KmeansTable {
            src,
            k,
            iters,
            seed,
            centroids,
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
    centroids: bool,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl Verdicts for KmeansTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let (k, iters, seed) = (self.k, self.iters, self.seed);
        let (keys, (clusters, cent, d)) = self
            .src
            .on_vectors(state, "kmeans", move |device, flat, d| {
                kmeans_on(device, &flat, d, k, iters, seed).map(|(rows, cent)| (rows, cent, d))
            })
            .await?;
        if self.centroids {
            return Ok(centroid_columns(&clusters, &cent, d));
        }
        Ok(vec![
            keys,
            Arc::new(UInt32Array::from_iter_values(clusters.iter().map(|c| c.0))),
            Arc::new(Float32Array::from_iter_values(clusters.iter().map(|c| c.1))),
        ])
    }
}

/// `(cluster, size, centroid)` of the non-empty clusters, by cluster number.
fn centroid_columns(rows: &[(u32, f32)], cent: &[f32], d: usize) -> Vec<ArrayRef> {
    let mut size = vec![0u64; cent.len() / d.max(1)];
    for (c, _) in rows {
        size[*c as usize] += 1;
    }
    let used: Vec<usize> = (0..size.len()).filter(|&c| size[c] > 0).collect();
    let values = Float32Array::from_iter_values(
        used.iter()
            .flat_map(|&c| cent[c * d..(c + 1) * d].iter().copied()),
    );
    let offsets = OffsetBuffer::from_lengths(used.iter().map(|_| d));
    let field = Arc::new(Field::new_list_field(DataType::Float32, false));
    vec![
        Arc::new(UInt32Array::from_iter_values(
            used.iter().map(|&c| c as u32),
        )),
        Arc::new(UInt64Array::from_iter_values(used.iter().map(|&c| size[c]))),
        Arc::new(ListArray::new(field, offsets, Arc::new(values), None)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_name_what_is_wrong() {
        assert_eq!(options("").unwrap(), (20, 0, false));
        assert_eq!(
            options(" iters = 5 ; seed=7; metric=COSINE; output=centroids ").unwrap(),
            (5, 7, true)
        );
        for (bad, says) in [
            ("iters=0", "iters must be a positive integer"),
            ("seed=-1", "seed must be a non-negative integer"),
            ("metric=l2", "metric 'l2' is not supported"),
            ("depth=3", "unknown option 'depth'"),
            ("output=means", "output must be rows or centroids"),
            ("iters", "is not NAME=VALUE"),
        ] {
            let e = options(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
