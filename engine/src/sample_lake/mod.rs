//! `lakecap sample-lake`: a realistic, deterministic demo lake.
//!
//! Hive-partitioned parquet shards (`crawl=2026-09/part-00000.parquet`, ...)
//! with columns `key`, `url`, `alt`, `img` and the partition column `crawl`.
//! Images are the real photos shipped in `data/photos` plus generated scenes
//! (with captions that describe them). Defects come in fixed proportions of
//! the row count ([`IMAGE_DEFECTS`], [`ALT_DEFECTS`]) and are recorded per row in
//! `DIR.truth.csv` beside the lake (key, crawl, image_defect, alt_defect, dup_of;
//! outside it, so that listing the lake finds only its parquet shards) so tests
//! and demos can check what curation found. `DIR.captions.parquet` (key,
//! caption) holds a description of every row's image (the photos' human
//! reference captions, the scenes' generated ones): a stand-in for recaption
//! output, so the fusion recipes run on the sample lake. The same seed gives
//! the same bytes.

mod images;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::arrow::array::{BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use images::{Photo, photos};

/// Image defects and their share of rows.
pub const IMAGE_DEFECTS: &[(&str, f64)] = &[
    ("exact_duplicate", 0.05),
    ("near_duplicate", 0.08),
    ("corrupt", 0.03),
    ("truncated", 0.03),
    ("not_an_image", 0.02),
    ("empty", 0.01),
    ("null", 0.02),
    ("bomb", 0.01),
];

/// Alt-text defects and their share of rows (independent of image defects).
pub const ALT_DEFECTS: &[(&str, f64)] = &[
    ("boilerplate", 0.10),
    ("filename", 0.08),
    ("ad", 0.05),
    ("url", 0.03),
    ("null", 0.04),
    ("empty", 0.01),
];

const BOILERPLATE: &[&str] = &[
    "image",
    "photo",
    "click here to enlarge",
    "untitled",
    "thumbnail",
    "no image available",
    "picture",
];
const ADS: &[&str] = &[
    "Buy now - 50% off all prints!",
    "Best prices in town! Visit our store today",
    "free download hd wallpaper 4k",
    "Free shipping on orders over $50",
];

/// Options of [`write_sample_lake`].
#[derive(Debug, Clone)]
pub struct SampleLakeOptions {
    pub rows: usize,
    pub seed: u64,
    /// Rows per parquet file.
    pub rows_per_file: usize,
}

impl Default for SampleLakeOptions {
    fn default() -> Self {
        Self {
            rows: 240,
            seed: 42,
            rows_per_file: 64,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleLakeReport {
    pub rows: usize,
    pub files: Vec<PathBuf>,
    /// Count per `image:<defect>` and `alt:<defect>`.
    pub defects: BTreeMap<String, usize>,
}

struct Row {
    key: String,
    ext: &'static str,
    alt: Option<String>,
    /// What the image shows (see `captions_path`).
    caption: String,
    img: Option<Vec<u8>>,
    image_defect: &'static str,
    alt_defect: &'static str,
    dup_of: Option<String>,
}

fn quota(rows: usize, share: f64) -> usize {
    (rows as f64 * share).round() as usize
}

fn new_key(rng: &mut ChaCha8Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

/// Where [`write_sample_lake`] puts the ground truth of the lake in `dir`.
pub fn truth_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "lake".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.truth.csv"))
}

/// Where [`write_sample_lake`] puts the per-row image descriptions.
pub fn captions_path(dir: &Path) -> PathBuf {
    let t = truth_path(dir);
    t.with_file_name(
        t.file_name()
            .expect("a file name")
            .to_string_lossy()
            .replace(".truth.csv", ".captions.parquet"),
    )
}

/// Writes the lake into `dir` (created if missing; must not already hold parquet files).
pub fn write_sample_lake(dir: &Path, opts: &SampleLakeOptions) -> Result<SampleLakeReport> {
    if opts.rows == 0 || opts.rows_per_file == 0 {
        bail!("--rows and rows per file must be positive");
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: choose a new folder for the sample lake",
            dir.display()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let n = opts.rows;
    let defect_rows: usize = IMAGE_DEFECTS.iter().map(|&(_, s)| quota(n, s)).sum();
    let clean = n.saturating_sub(defect_rows).max(1);

    // Clean rows: every photo first (noisy web alt text), then generated scenes.
    let mut rows: Vec<Row> = Vec::with_capacity(n);
    for p in photos().into_iter().take(clean) {
        let ext = if p.file.ends_with(".jpg") {
            "jpg"
        } else {
            "png"
        };
        let key = new_key(&mut rng);
        rows.push(Row {
            key,
            ext,
            alt: Some(p.web_alt_text.to_string()),
            caption: p.reference_caption.to_string(),
            img: Some(p.bytes.to_vec()),
            image_defect: "",
            alt_defect: "",
            dup_of: None,
        });
    }
    while rows.len() < clean {
        let (img, caption) = images::scene(&mut rng);
        let (bytes, ext) = images::encode_scene(&mut rng, img);
        let key = new_key(&mut rng);
        rows.push(Row {
            key,
            ext,
            alt: Some(caption.clone()),
            caption,
            img: Some(bytes),
            image_defect: "",
            alt_defect: "",
            dup_of: None,
        });
    }

    // Defective rows derive from random clean rows.
    for &(defect, share) in IMAGE_DEFECTS {
        for _ in 0..quota(n, share) {
            if rows.len() >= n {
                break;
            }
            let src = &rows[rng.random_range(0..clean)];
            let src_bytes = src.img.clone().expect("clean rows have images");
            let (src_key, src_alt, caption) =
                (src.key.clone(), src.alt.clone(), src.caption.clone());
            let (img, dup_of) = match defect {
                "exact_duplicate" => (Some(src_bytes), Some(src_key)),
                "near_duplicate" => (
                    Some(images::near_duplicate(&mut rng, &src_bytes).0),
                    Some(src_key),
                ),
                "corrupt" => (Some(images::corrupt(&mut rng, &src_bytes)), None),
                "truncated" => (Some(images::truncated(&mut rng, &src_bytes)), None),
                "not_an_image" => (Some(images::not_an_image(&mut rng)), None),
                "empty" => (Some(Vec::new()), None),
                "bomb" => (Some(images::bomb()), None),
                _ => (None, None),
            };
            let key = new_key(&mut rng);
            rows.push(Row {
                key,
                ext: "jpg",
                alt: src_alt,
                caption,
                img,
                image_defect: defect,
                alt_defect: "",
                dup_of,
            });
        }
    }

    // Alt defects on a disjoint random subset of rows.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut rng);
    let mut next = order.into_iter();
    for &(defect, share) in ALT_DEFECTS {
        for i in next.by_ref().take(quota(n, share)) {
            let r = &mut rows[i];
            r.alt_defect = defect;
            r.alt = match defect {
                "boilerplate" => Some(BOILERPLATE.choose(&mut rng).expect("list").to_string()),
                "filename" => Some(format!(
                    "IMG_{:04}.{}",
                    rng.random_range(1..10000),
                    r.ext.to_uppercase()
                )),
                "ad" => Some(ADS.choose(&mut rng).expect("list").to_string()),
                "url" => Some(format!("https://img.example.org/media/{}.{}", r.key, r.ext)),
                "empty" => Some(String::new()),
                _ => None,
            };
        }
    }

    rows.shuffle(&mut rng);
    let split = rows.len() * 3 / 5;
    let mut report = SampleLakeReport {
        rows: rows.len(),
        files: Vec::new(),
        defects: BTreeMap::new(),
    };
    for r in &rows {
        for (side, d) in [("image", r.image_defect), ("alt", r.alt_defect)] {
            if !d.is_empty() {
                *report.defects.entry(format!("{side}:{d}")).or_default() += 1;
            }
        }
    }
    let mut truth = String::from("key,crawl,image_defect,alt_defect,dup_of\n");
    for (crawl, part) in [("2026-09", &rows[..split]), ("2026-10", &rows[split..])] {
        for r in part {
            truth.push_str(&format!(
                "{},{crawl},{},{},{}\n",
                r.key,
                r.image_defect,
                r.alt_defect,
                r.dup_of.as_deref().unwrap_or("")
            ));
        }
        for (i, chunk) in part.chunks(opts.rows_per_file).enumerate() {
            let sub = dir.join(format!("crawl={crawl}"));
            fs::create_dir_all(&sub)?;
            let path = sub.join(format!("part-{i:05}.parquet"));
            write_parquet(&path, crawl, chunk)?;
            report.files.push(path);
        }
    }
    fs::write(truth_path(dir), truth)?;
    write_captions(&captions_path(dir), &rows)?;
    Ok(report)
}

fn write_captions(path: &Path, rows: &[Row]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.key.clone()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.caption.clone()))
                    .collect::<StringArray>(),
            ),
        ],
    )?;
    write_batch(path, &batch)
}

/// One parquet file holding `batch`.
fn write_batch(path: &Path, batch: &RecordBatch) -> Result<()> {
    let props = WriterProperties::builder()
        .set_created_by("lakecap sample-lake".into())
        .build();
    let file =
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

fn write_parquet(path: &Path, crawl: &str, rows: &[Row]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("alt", DataType::Utf8, true),
        Field::new("img", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.key.clone()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| {
                        Some(format!(
                            "https://img.example.org/{crawl}/{}.{}",
                            r.key, r.ext
                        ))
                    })
                    .collect::<StringArray>(),
            ),
            Arc::new(rows.iter().map(|r| r.alt.clone()).collect::<StringArray>()),
            Arc::new(
                rows.iter()
                    .map(|r| r.img.as_deref())
                    .collect::<BinaryArray>(),
            ),
        ],
    )?;
    write_batch(path, &batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_with_exact_defect_counts() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let opts = SampleLakeOptions {
            rows: 100,
            seed: 9,
            rows_per_file: 30,
        };
        let ra = write_sample_lake(a.path(), &opts).unwrap();
        let rb = write_sample_lake(b.path(), &opts).unwrap();
        assert_eq!(ra.rows, 100);
        assert_eq!(ra.defects, rb.defects);
        assert_eq!(ra.defects["image:near_duplicate"], 8);
        assert_eq!(ra.defects["image:truncated"], 3);
        assert_eq!(ra.defects["alt:boilerplate"], 10);
        for (fa, fb) in ra.files.iter().zip(&rb.files) {
            assert_eq!(
                fs::read(fa).unwrap(),
                fs::read(fb).unwrap(),
                "{}",
                fa.display()
            );
        }
        assert_eq!(
            fs::read(truth_path(a.path())).unwrap(),
            fs::read(truth_path(b.path())).unwrap()
        );
        let other = tempfile::tempdir().unwrap();
        write_sample_lake(
            other.path(),
            &SampleLakeOptions {
                seed: 10,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_ne!(
            fs::read(&ra.files[0]).unwrap(),
            fs::read(other.path().join("crawl=2026-09/part-00000.parquet")).unwrap()
        );
        assert!(
            write_sample_lake(a.path(), &opts)
                .unwrap_err()
                .to_string()
                .contains("not empty")
        );
    }

    #[test]
    fn photos_are_embedded_with_captions() {
        let p = photos();
        assert_eq!(p.len(), 14);
        assert!(
            p.iter()
                .all(|p| !p.bytes.is_empty() && !p.reference_caption.is_empty())
        );
        assert_eq!(p[4].web_alt_text, "IMG_0042.JPG");
    }
}
