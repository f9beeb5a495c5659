//! What a report shows, gathered from a query's result one batch at a time,
//! so a lake of any size is reported in bounded memory: exact counts, minima,
//! maxima and means; histograms from a uniform sample of each column's values;
//! a uniform sample of rows for the grid (reservoir sampling, seeded); and the
//! biggest near-duplicate clusters, whose image bytes are kept only for the
//! members shown. Thumbnails are made at the end, for the rows shown only.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Values kept per column for its histogram; counts, extremes and means are exact.
const VALUES_KEPT: usize = 200_000;
/// Characters of a text cell shown in the grid.
const TEXT_SHOWN: usize = 600;
/// Near-duplicate clusters whose members' images are kept, and members per cluster.
const CLUSTERS_KEPT: usize = 256;
pub const MEMBERS_SHOWN: usize = 6;
/// Image bytes kept for cluster members, in all.
const CLUSTER_BYTES: usize = 64 << 20;

/// Which columns play which part, from names given or the result's schema.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub key: Option<String>,
    pub image: Option<String>,
    pub reason: Option<String>,
    pub dup_group: Option<String>,
}

/// A column's values as a histogram sees them.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub count: u64,
    pub nulls: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub values: Vec<f64>,
    pub integral: bool,
    /// Words per row of a text column, not a column of the result.
    pub words: bool,
}

impl Metric {
    fn new(name: String, words: bool) -> Self {
        Self {
            name,
            words,
            count: 0,
            nulls: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            values: Vec::new(),
            integral: true,
        }
    }

    fn push(&mut self, v: Option<f64>, rng: &mut ChaCha8Rng) {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            self.nulls += 1;
            return;
        };
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.integral &= v.fract() == 0.0;
        if self.values.len() < VALUES_KEPT {
            self.values.push(v);
        } else {
            let j = rng.random_range(0..self.count);
            if (j as usize) < VALUES_KEPT {
                self.values[j as usize] = v;
            }
        }
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    /// Bins as (low, high, rows): one per value for integers over a short
    /// span (levels, buckets), else `bins` of equal width; rows are scaled to
    /// the column's count when only a sample of its values was kept.
    pub fn histogram(&self, bins: usize) -> Vec<(f64, f64, f64)> {
        if self.values.is_empty() {
            return Vec::new();
        }
        let span = self.max - self.min;
        let (n, width) = if self.integral && span < 40.0 {
            (span as usize + 1, 1.0)
        } else if span == 0.0 {
            (1, 1.0)
        } else {
            (bins, span / bins as f64)
        };
        let mut counts = vec![0u64; n];
        for v in &self.values {
            let i = ((v - self.min) / width) as usize;
            counts[i.min(n - 1)] += 1;
        }
        let scale = self.count as f64 / self.values.len() as f64;
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let lo = self.min + i as f64 * width;
                (lo, lo + width, *c as f64 * scale)
            })
            .collect()
    }
}

/// One row of the grid, or one member of a cluster.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub reason: Option<String>,
    pub texts: Vec<Option<String>>,
    pub image: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Cluster {
    pub rows: u64,
    pub members: Vec<Row>,
}

/// Numeric columns, struct fields among them, as (shown name, Float64 column).
fn numeric_columns(name: &str, col: &ArrayRef) -> Result<Vec<(String, ArrayRef)>> {
    Ok(match col.data_type() {
        t if t.is_numeric() => vec![(name.to_string(), cast(col, &DataType::Float64)?)],
        DataType::Struct(fields) => {
            let s = col.as_struct();
            let mut out = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                if f.data_type().is_numeric() {
                    // A NULL struct hides its fields' values.
                    let c = cast(s.column(i), &DataType::Float64)?;
                    let values = c.as_primitive::<Float64Type>().values().clone();
                    let nulls = NullBuffer::union(c.nulls(), s.nulls());
                    let c: ArrayRef = Arc::new(Float64Array::new(values, nulls));
                    out.push((format!("{name}.{}", f.name()), c));
                }
            }
            out
        }
        _ => Vec::new(),
    })
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// `col` as Utf8 or Binary, so rows read the same whatever the width.
fn plain(col: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(cast(col, to)?)
}

/// Everything the report shows, accumulated batch by batch.
pub struct Collected {
    pub roles: Roles,
    pub text_columns: Vec<String>,
    pub rows: u64,
    /// Rows per drop reason; `None` is kept.
    pub outcomes: BTreeMap<Option<String>, u64>,
    pub metrics: Vec<Metric>,
    pub sample: Vec<Row>,
    pub clusters: HashMap<String, Cluster>,
    sample_size: usize,
    cluster_bytes: usize,
    rng: ChaCha8Rng,
}

impl Collected {
    /// Chooses the roles of `schema`'s columns: those named in `given` (an
    /// error when absent or of the wrong type), else by name and type.
    pub fn new(schema: &Schema, given: &Roles, sample_size: usize, seed: u64) -> Result<Self> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let find = |want: &Option<String>,
                    what: &str,
                    ok: fn(&DataType) -> bool|
         -> Result<Option<String>> {
            let Some(w) = want else { return Ok(None) };
            let Ok(f) = schema.field_with_name(w) else {
                bail!(
                    "report: no column '{w}' for the {what} in the result (columns: {})",
                    names.join(", ")
                )
            };
            if !ok(f.data_type()) {
                bail!(
                    "report: the {what} column '{w}' is {}, not a fitting type",
                    f.data_type()
                )
            }
            Ok(Some(w.clone()))
        };
        let named = |n: &str, ok: fn(&DataType) -> bool| {
            schema
                .field_with_name(n)
                .ok()
                .filter(|f| ok(f.data_type()))
                .map(|f| f.name().clone())
        };
        let any = |_: &DataType| true;
        let key = find(&given.key, "key", any)?.or_else(|| named("key", any));
        let image = find(&given.image, "image", is_binary)?
            .or_else(|| named("img", is_binary))
            .or_else(|| named("image", is_binary))
            .or_else(|| {
                schema
                    .fields()
                    .iter()
                    .find(|f| is_binary(f.data_type()))
                    .map(|f| f.name().clone())
            });
        let reason = find(&given.reason, "drop reason", is_text)?
            .or_else(|| named("dropped_because", is_text));
        let dup_group = find(&given.dup_group, "near-duplicate cluster", any)?
            .or_else(|| named("dup_group", any));
        let roles = Roles {
            key,
            image,
            reason,
            dup_group,
        };
        let taken = |n: &str| {
            [&roles.key, &roles.image, &roles.reason, &roles.dup_group]
                .iter()
                .any(|r| r.as_deref() == Some(n))
        };
        let text_columns = schema
            .fields()
            .iter()
            .filter(|f| is_text(f.data_type()) && !taken(f.name()))
            .map(|f| f.name().clone())
            .collect();
        Ok(Self {
            roles,
            text_columns,
            rows: 0,
            outcomes: BTreeMap::new(),
            metrics: Vec::new(),
            sample: Vec::new(),
            clusters: HashMap::new(),
            sample_size,
            cluster_bytes: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    fn metric(&mut self, name: &str, words: bool) -> usize {
        match self.metrics.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                self.metrics.push(Metric::new(name.to_string(), words));
                self.metrics.len() - 1
            }
        }
    }

    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |name: &Option<String>, to: &DataType| -> Result<Option<ArrayRef>> {
            name.as_ref()
                .map(|n| plain(batch.column_by_name(n).expect("role column in result"), to))
                .transpose()
        };
        let keys = column(&self.roles.key, &DataType::Utf8)?;
        let images = column(&self.roles.image, &DataType::LargeBinary)?;
        let reasons = column(&self.roles.reason, &DataType::Utf8)?;
        let groups = column(&self.roles.dup_group, &DataType::Utf8)?;
        let texts = self
            .text_columns
            .iter()
            .map(|n| {
                plain(
                    batch.column_by_name(n).expect("text column"),
                    &DataType::Utf8,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut numeric = Vec::new();
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            if Some(name) == self.roles.key.as_ref() || Some(name) == self.roles.dup_group.as_ref()
            {
                continue;
            }
            for (shown, values) in numeric_columns(name, col)? {
                numeric.push((self.metric(&shown, false), values));
            }
        }
        let word_metrics: Vec<usize> = self
            .text_columns
            .clone()
            .iter()
            .map(|n| self.metric(&format!("words in {n}"), true))
            .collect();
        let str_at = |a: &Option<ArrayRef>, i: usize| {
            a.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.as_string::<i32>().value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            let n = self.rows;
            self.rows += 1;
            let reason = str_at(&reasons, i);
            *self.outcomes.entry(reason.clone()).or_default() += 1;
            for (m, values) in &numeric {
                let v = values.as_primitive::<Float64Type>();
                let v = v.is_valid(i).then(|| v.value(i));
                self.metrics[*m].push(v, &mut self.rng);
            }
            for (m, t) in word_metrics.iter().zip(&texts) {
                let words = t
                    .is_valid(i)
                    .then(|| t.as_string::<i32>().value(i).split_whitespace().count() as f64);
                self.metrics[*m].push(words, &mut self.rng);
            }
            let sampled = if self.sample.len() < self.sample_size {
                Some(self.sample.len())
            } else {
                let j = self.rng.random_range(0..=n) as usize;
                (j < self.sample_size).then_some(j)
            };
            let group = str_at(&groups, i);
            let member = group.as_ref().is_some_and(|g| self.wants_member(g));
            if sampled.is_none() && !member {
                if let Some(g) = group {
                    self.clusters.entry(g).or_default().rows += 1;
                }
                continue;
            }
            let row = Row {
                key: str_at(&keys, i).unwrap_or_else(|| format!("row {}", n + 1)),
                reason,
                texts: texts
                    .iter()
                    .map(|t| {
                        t.is_valid(i).then(|| {
                            t.as_string::<i32>()
                                .value(i)
                                .chars()
                                .take(TEXT_SHOWN)
                                .collect()
                        })
                    })
                    .collect(),
                image: images
                    .as_ref()
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.as_binary::<i64>().value(i).to_vec()),
            };
            if let Some(g) = group {
                let c = self.clusters.entry(g).or_default();
                c.rows += 1;
                if member {
                    self.cluster_bytes += row.image.as_ref().map_or(0, Vec::len);
                    c.members.push(row.clone());
                }
            }
            if let Some(j) = sampled {
                if j == self.sample.len() {
                    self.sample.push(row);
                } else {
                    self.sample[j] = row;
                }
            }
        }
        Ok(())
    }

    /// Whether a new member of cluster `g` keeps its image for display.
    fn wants_member(&self, g: &str) -> bool {
        match self.clusters.get(g) {
            Some(c) => c.members.len() < MEMBERS_SHOWN && !c.members.is_empty(),
            None => self.clusters.len() < CLUSTERS_KEPT && self.cluster_bytes < CLUSTER_BYTES,
        }
    }

    /// The biggest clusters with more than one row, biggest first (ties by name).
    pub fn top_clusters(&self, n: usize) -> Vec<(&String, &Cluster)> {
        let mut all: Vec<_> = self
            .clusters
            .iter()
            .filter(|(_, c)| c.rows > 1 && !c.members.is_empty())
            .collect();
        all.sort_by(|a, b| b.1.rows.cmp(&a.1.rows).then(a.0.cmp(b.0)));
        all.truncate(n);
        all
    }

    /// Clusters with more than one row, and the rows in them.
    pub fn cluster_totals(&self) -> (usize, u64) {
        self.clusters
            .values()
            .filter(|c| c.rows > 1)
            .fold((0, 0), |(n, r), c| (n + 1, r + c.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_levels_get_a_bin_each_and_floats_equal_widths() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut m = Metric::new("level".into(), false);
        for v in [0.0, 1.0, 1.0, 7.0] {
            m.push(Some(v), &mut rng);
        }
        m.push(None, &mut rng);
        let h = m.histogram(20);
        assert_eq!(h.len(), 8);
        assert_eq!(h[1], (1.0, 2.0, 2.0));
        assert_eq!((m.count, m.nulls), (4, 1));

        let mut f = Metric::new("score".into(), false);
        for i in 0..100 {
            f.push(Some(i as f64 / 10.0), &mut rng);
        }
        let h = f.histogram(10);
        assert_eq!(h.len(), 10);
        assert!(h.iter().all(|b| b.2 == 10.0), "{h:?}");
    }

    #[test]
    fn sampled_values_are_scaled_to_the_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut m = Metric::new("x".into(), false);
        for i in 0..(VALUES_KEPT as u64 * 2) {
            m.push(Some((i % 2) as f64 + 0.5), &mut rng);
        }
        assert_eq!(m.values.len(), VALUES_KEPT);
        let total: f64 = m.histogram(4).iter().map(|b| b.2).sum();
        assert!((total - (VALUES_KEPT * 2) as f64).abs() < 1e-6);
    }
}
