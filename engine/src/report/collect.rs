//! What a report shows, gathered from a query's result one batch at a time,
//! so a lake of any size is reported in bounded memory: exact counts, minima,
//! maxima and means; histograms from a uniform sample of each column's values;
//! a uniform sample of rows for the grid (reservoir sampling, seeded); and the
//! biggest near-duplicate clusters, whose image bytes are kept only for the
//! members shown (a cluster that outgrows the smallest kept one takes its
//! place). Distinct drop reasons, counted clusters and kept image bytes are
//! capped. Thumbnails are made at the end, for the rows shown only.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{can_cast_types, cast};
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
    /// Members whose images are kept for display (only while the cluster is
    /// among the biggest seen so far).
    pub members: Vec<Row>,
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

fn as_text(t: &DataType) -> bool {
    can_cast_types(t, &DataType::Utf8)
}

/// Where a histogram's values come from: a numeric column, a numeric field
/// of a struct column, or the word count of the n-th text column.
#[derive(Debug, Clone, Copy)]
enum Source {
    Column(usize),
    Field(usize, usize),
    Words(usize),
}

/// Everything the report shows, accumulated batch by batch.
pub struct Collected {
    pub roles: Roles,
    pub text_columns: Vec<String>,
    pub rows: u64,
    /// Rows per drop reason; `None` is kept. At most [`REASONS_KEPT`]
    /// reasons, the rest under [`OTHER_REASONS`].
    pub outcomes: BTreeMap<Option<String>, u64>,
    pub metrics: Vec<Metric>,
    pub sample: Vec<Row>,
    /// Rows per near-duplicate cluster, for the first [`GROUPS_COUNTED`]
    /// distinct values; `groups_uncounted` rows fall outside them.
    pub clusters: HashMap<String, Cluster>,
    pub groups_uncounted: u64,
    /// Column indices of the roles and the text columns.
    key: Option<usize>,
    image: Option<usize>,
    reason: Option<usize>,
    dup_group: Option<usize>,
    texts: Vec<usize>,
    sources: Vec<Source>,
    /// Clusters whose images are kept, at most [`CLUSTERS_KEPT`].
    kept: Vec<String>,
    sample_size: usize,
    cluster_bytes: usize,
    rng: ChaCha8Rng,
}

/// Distinct drop reasons charted; the rest are summed as one.
pub const REASONS_KEPT: usize = 40;
pub const OTHER_REASONS: &str = "(other reasons)";
/// Distinct near-duplicate cluster values counted.
const GROUPS_COUNTED: usize = 200_000;

impl Collected {
    /// Chooses the roles of `schema`'s columns: those named in `given` (an
    /// error when absent or of the wrong type), else by name and type.
    pub fn new(schema: &Schema, given: &Roles, sample_size: usize, seed: u64) -> Result<Self> {
        let fields = schema.fields();
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        let find = |want: &Option<String>,
                    what: &str,
                    ok: fn(&DataType) -> bool|
         -> Result<Option<usize>> {
            let Some(w) = want else { return Ok(None) };
            let Some(i) = names.iter().position(|n| n == w) else {
                bail!(
                    "report: no column '{w}' for the {what} in the result (columns: {})",
                    names.join(", ")
                )
            };
            if !ok(fields[i].data_type()) {
                bail!(
                    "report: the {what} column '{w}' is {}, not a fitting type",
                    fields[i].data_type()
                )
            }
            Ok(Some(i))
        };
        let named = |n: &str, ok: fn(&DataType) -> bool| {
            names
                .iter()
                .position(|c| *c == n)
                .filter(|&i| ok(fields[i].data_type()))
        };
        let key = find(&given.key, "key", as_text)?.or_else(|| named("key", as_text));
        let image = find(&given.image, "image", is_binary)?
            .or_else(|| named("img", is_binary))
            .or_else(|| named("image", is_binary))
            .or_else(|| fields.iter().position(|f| is_binary(f.data_type())));
        let reason = find(&given.reason, "drop reason", is_text)?
            .or_else(|| named("dropped_because", is_text));
        let dup_group = find(&given.dup_group, "near-duplicate cluster", as_text)?
            .or_else(|| named("dup_group", as_text));
        let name = |i: Option<usize>| i.map(|i| names[i].to_string());
        let roles = Roles {
            key: name(key),
            image: name(image),
            reason: name(reason),
            dup_group: name(dup_group),
        };
        let taken = |i: usize| [key, image, reason, dup_group].contains(&Some(i));
        let texts: Vec<usize> = (0..fields.len())
            .filter(|&i| is_text(fields[i].data_type()) && !taken(i))
            .collect();
        // Histograms: numeric columns and struct fields, then words per text column.
        let mut metrics = Vec::new();
        let mut sources = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if taken(i) {
                continue;
            }
            match f.data_type() {
                t if t.is_numeric() => {
                    metrics.push(Metric::new(f.name().clone(), false));
                    sources.push(Source::Column(i));
                }
                DataType::Struct(children) => {
                    for (j, c) in children.iter().enumerate() {
                        if c.data_type().is_numeric() {
                            metrics.push(Metric::new(format!("{}.{}", f.name(), c.name()), false));
                            sources.push(Source::Field(i, j));
                        }
                    }
                }
                _ => {}
            }
        }
        for (n, &i) in texts.iter().enumerate() {
            metrics.push(Metric::new(format!("words in {}", names[i]), true));
            sources.push(Source::Words(n));
        }
        Ok(Self {
            roles,
            text_columns: texts.iter().map(|&i| names[i].to_string()).collect(),
            rows: 0,
            outcomes: BTreeMap::new(),
            metrics,
            sample: Vec::new(),
            clusters: HashMap::new(),
            groups_uncounted: 0,
            key,
            image,
            reason,
            dup_group,
            texts,
            sources,
            kept: Vec::new(),
            sample_size,
            cluster_bytes: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// A source's values in `batch` as Float64; `texts` are the batch's text
    /// columns, already as Utf8.
    fn values(batch: &RecordBatch, texts: &[ArrayRef], source: Source) -> Result<ArrayRef> {
        Ok(match source {
            Source::Column(i) => cast(batch.column(i), &DataType::Float64)?,
            Source::Field(i, j) => {
                let s = batch.column(i).as_struct();
                // A NULL struct hides its fields' values.
                let c = cast(s.column(j), &DataType::Float64)?;
                let values = c.as_primitive::<Float64Type>().values().clone();
                let nulls = NullBuffer::union(c.nulls(), s.nulls());
                Arc::new(Float64Array::new(values, nulls))
            }
            Source::Words(n) => {
                let words = texts[n]
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| v.split_whitespace().count() as f64));
                Arc::new(Float64Array::from_iter(words))
            }
        })
    }

    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |i: Option<usize>, to: &DataType| -> Result<Option<ArrayRef>> {
            i.map(|i| Ok(cast(batch.column(i), to)?)).transpose()
        };
        let keys = column(self.key, &DataType::Utf8)?;
        let images = column(self.image, &DataType::LargeBinary)?;
        let reasons = column(self.reason, &DataType::Utf8)?;
        let groups = column(self.dup_group, &DataType::Utf8)?;
        let texts = self
            .texts
            .iter()
            .map(|&i| Ok(cast(batch.column(i), &DataType::Utf8)?))
            .collect::<Result<Vec<_>>>()?;
        let values = self
            .sources
            .iter()
            .map(|&s| Self::values(batch, &texts, s))
            .collect::<Result<Vec<_>>>()?;
        let str_at = |a: &Option<ArrayRef>, i: usize| {
            a.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.as_string::<i32>().value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            let n = self.rows;
            self.rows += 1;
            let reason = str_at(&reasons, i);
            self.count_outcome(&reason);
            for (m, v) in self.metrics.iter_mut().zip(&values) {
                let v = v.as_primitive::<Float64Type>();
                m.push(v.is_valid(i).then(|| v.value(i)), &mut self.rng);
            }
            let sampled = if self.sample.len() < self.sample_size {
                Some(self.sample.len())
            } else {
                let j = self.rng.random_range(0..=n) as usize;
                (j < self.sample_size).then_some(j)
            };
            let group = str_at(&groups, i);
            let member = match &group {
                Some(g) => self.count_member(g),
                None => false,
            };
            if sampled.is_none() && !member {
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
            if let Some(g) = group.filter(|_| member) {
                let bytes = row.image.as_ref().map_or(0, Vec::len);
                // Image bytes stay bounded: a member over the budget is not kept.
                if self.cluster_bytes + bytes <= CLUSTER_BYTES
                    && let Some(c) = self.clusters.get_mut(&g)
                {
                    self.cluster_bytes += bytes;
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

    fn count_outcome(&mut self, reason: &Option<String>) {
        let key = match reason {
            Some(r)
                if !self.outcomes.contains_key(reason)
                    && self.outcomes.keys().flatten().count() >= REASONS_KEPT =>
            {
                Some(OTHER_REASONS.to_string())
            }
            _ => reason.clone(),
        };
        *self.outcomes.entry(key).or_default() += 1;
    }

    /// Counts a row of cluster `g`; true when its image should be kept: the
    /// cluster is among the [`CLUSTERS_KEPT`] biggest so far (replacing the
    /// smallest kept one when it outgrows it) and shows fewer than
    /// [`MEMBERS_SHOWN`] members.
    fn count_member(&mut self, g: &str) -> bool {
        let counted = self.clusters.len();
        let rows = match self.clusters.get_mut(g) {
            Some(c) => {
                c.rows += 1;
                c.rows
            }
            None if counted < GROUPS_COUNTED => {
                self.clusters.insert(
                    g.to_string(),
                    Cluster {
                        rows: 1,
                        members: Vec::new(),
                    },
                );
                1
            }
            None => {
                self.groups_uncounted += 1;
                return false;
            }
        };
        if self.kept.iter().any(|k| k == g) {
            return self.clusters[g].members.len() < MEMBERS_SHOWN;
        }
        if self.kept.len() < CLUSTERS_KEPT {
            self.kept.push(g.to_string());
            return true;
        }
        // Replace the smallest kept cluster once this one is bigger.
        let (at, smallest) = self
            .kept
            .iter()
            .enumerate()
            .map(|(at, k)| (at, self.clusters[k].rows))
            .min_by_key(|&(_, rows)| rows)
            .expect("CLUSTERS_KEPT > 0");
        if rows <= smallest {
            return false;
        }
        let evicted = std::mem::replace(&mut self.kept[at], g.to_string());
        if let Some(c) = self.clusters.get_mut(&evicted) {
            let freed: usize = c
                .members
                .iter()
                .filter_map(|m| m.image.as_ref())
                .map(Vec::len)
                .sum();
            self.cluster_bytes -= freed;
            c.members.clear();
        }
        true
    }

    /// The biggest clusters with more than one row and kept members, biggest
    /// first (ties by name).
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

    /// A big cluster seen after hundreds of small ones is still shown, and
    /// drop reasons past the cap are summed as one.
    #[test]
    fn biggest_clusters_win_and_reasons_are_capped() {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("dropped_because", DataType::Utf8, true),
            Field::new("dup_group", DataType::Utf8, true),
        ]));
        let mut c = Collected::new(&schema, &Roles::default(), 4, 0).unwrap();
        let (mut keys, mut reasons, mut groups) = (vec![], vec![], vec![]);
        for i in 0..600 {
            keys.push(format!("s{i}"));
            reasons.push(Some(format!("reason {i}")));
            groups.push(format!("small{}", i / 2));
        }
        for i in 0..50 {
            keys.push(format!("b{i}"));
            reasons.push(None);
            groups.push("big".to_string());
        }
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(StringArray::from(reasons)),
                Arc::new(StringArray::from(groups)),
            ],
        )
        .unwrap();
        c.add(&batch).unwrap();
        let top = c.top_clusters(3);
        assert_eq!((top[0].0.as_str(), top[0].1.rows), ("big", 50));
        assert_eq!(top[0].1.members.len(), MEMBERS_SHOWN);
        assert_eq!(c.cluster_totals(), (301, 650));
        assert_eq!(c.outcomes.len(), REASONS_KEPT + 2);
        assert_eq!(
            c.outcomes[&Some(OTHER_REASONS.to_string())],
            600 - REASONS_KEPT as u64
        );
        assert_eq!(c.outcomes[&None], 50);
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
