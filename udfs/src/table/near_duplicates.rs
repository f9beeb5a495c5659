//! `near_duplicates(table, key_col, hash_col, max_hamming)`: perceptual
//! near-duplicate clusters as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, UInt32Array, UInt64Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::Expr;
use lakecap_models::dedup::{MAX_RADIUS, hamming_clusters};

use super::table_args::{Computed, SourceColumns, Verdicts, resolve, string_arg};

/// Table function: clusters rows whose 64-bit hashes are within `max_hamming` bits
/// (connected components), sub-quadratic by multi-index hashing.
///
/// Returns one row per member of every cluster with two or more members:
/// `(key, cluster_id, representative, distance)`, where the representative is the
/// cluster's smallest key, `cluster_id` numbers clusters densely in representative
/// order, and `distance` is the member's Hamming distance to the representative.
/// Rows with a NULL key or hash are skipped.
///
/// ```sql
/// CREATE TABLE h AS SELECT key, phash(img) AS ph FROM lake;
/// SELECT * FROM lake WHERE key NOT IN
///   (SELECT key FROM near_duplicates('h', 'key', 'ph', 6) WHERE key <> representative);
/// ```
#[derive(Debug, Default)]
pub struct NearDuplicatesFunc;

const USAGE: &str = "near_duplicates('table', 'key_column', 'hash_column', max_hamming)";

impl TableFunctionImpl for NearDuplicatesFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 4 {
            return plan_err!("{USAGE} takes 4 arguments, got {}", exprs.len());
        }
        let table = string_arg(USAGE, &exprs[0], "table")?;
        let key = string_arg(USAGE, &exprs[1], "key_column")?;
        let hash = string_arg(USAGE, &exprs[2], "hash_column")?;
        let radius = match &exprs[3] {
            Expr::Literal(v, _) => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
                ScalarValue::Int64(Some(r)) => Some(r),
                _ => None,
            }),
            _ => None,
        };
        let radius = match radius {
            Some(r) if (0..=i64::from(MAX_RADIUS)).contains(&r) => r as u32,
            _ => {
                return plan_err!(
                    "{USAGE}: max_hamming must be an integer from 0 to {MAX_RADIUS}, got {}",
                    exprs[3]
                );
            }
        };
        let src = resolve(USAGE, &args, &table, &key, &hash)?;
        let key_field = src.key.clone();
        let hash_type = src.value.data_type().clone();
        if !matches!(hash_type, DataType::UInt64 | DataType::Int64) {
            return plan_err!(
                "{USAGE}: column '{hash}' must hold UInt64 or Int64 hashes (e.g. phash(img)), got {hash_type}"
            );
        }
        let out = Arc::new(Schema::new(vec![
            Field::new("key", key_field.data_type().clone(), false),
            Field::new("cluster_id", DataType::UInt64, false),
            Field::new("representative", key_field.data_type().clone(), false),
            Field::new("distance", DataType::UInt32, false),
        ]));
        Ok(Arc::new(Computed(Box::new(NearDuplicatesTable {
            src,
            radius,
            schema: out,
        }))))
    }
}

#[derive(Debug)]
struct NearDuplicatesTable {
    src: SourceColumns,
    radius: u32,
    schema: SchemaRef,
}

impl NearDuplicatesTable {
    /// Reads (key, hash) sorted by key, so that the first member of a cluster is its smallest key.
    async fn read(&self, state: &dyn Session) -> Result<(ArrayRef, Vec<u64>)> {
        let (keys, batches) = self.src.read(state).await?;
        let mut hashes = Vec::with_capacity(keys.len());
        for b in &batches {
            let h = b.column(1);
            match h.data_type() {
                DataType::UInt64 => {
                    hashes.extend(h.as_primitive::<UInt64Type>().values().iter().copied())
                }
                DataType::Int64 => hashes.extend(
                    h.as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .map(|&v| v as u64),
                ),
                other => return exec_err!("near_duplicates: unexpected hash type {other}"),
            }
        }
        Ok((keys, hashes))
    }
}

#[async_trait::async_trait]
impl Verdicts for NearDuplicatesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let (keys, hashes) = self.read(state).await?;
        let labels = hamming_clusters(&hashes, self.radius);
        let mut size = vec![0u32; labels.len()];
        for &l in &labels {
            size[l] += 1;
        }
        // Dense ids in representative (= first, = smallest key) order.
        let mut dense = vec![u64::MAX; labels.len()];
        let mut next = 0;
        let (mut member, mut rep, mut cluster, mut dist) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, &l) in labels.iter().enumerate() {
            if size[l] < 2 {
                continue;
            }
            if dense[l] == u64::MAX {
                dense[l] = next;
                next += 1;
            }
            member.push(i as u64);
            rep.push(l as u64);
            cluster.push(dense[l]);
            dist.push((hashes[i] ^ hashes[l]).count_ones());
        }
        Ok(vec![
            take(&keys, &UInt64Array::from(member), None)?,
            Arc::new(UInt64Array::from(cluster)),
            take(&keys, &UInt64Array::from(rep), None)?,
            Arc::new(UInt32Array::from(dist)),
        ])
    }
}
