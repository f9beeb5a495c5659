//! Helpers shared by the parity tests: fixture JSON, the real photos,
//! BLIP inputs and relative error.

use std::path::Path;

/// `data/photos/NAME`, decoded.
pub fn photo(name: &str) -> image::DynamicImage {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/photos")
        .join(name);
    lakecap_models::image::decode(
        &std::fs::read(p).unwrap(),
        lakecap_models::image::DecodeLimits::default(),
    )
    .unwrap()
}

/// The captioner's pixel inputs for the photos of a BLIP fixture's `rows`.
pub fn blip_inputs(
    cap: &lakecap_models::serve::caption::Captioner,
    rows: &[serde_json::Value],
) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| cap.preprocess(&photo(r["photo"].as_str().unwrap())))
        .collect()
}

/// A JSON file (or a typed config) parsed.
pub fn json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of float arrays.
pub fn floats(v: &serde_json::Value) -> Vec<Vec<f32>> {
    rows(v, |x| x.as_f64().unwrap() as f32)
}

/// A JSON array of token-id arrays.
pub fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    rows(v, |x| x.as_u64().unwrap() as u32)
}

fn rows<T>(v: &serde_json::Value, f: impl Fn(&serde_json::Value) -> T + Copy) -> Vec<Vec<T>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(f).collect())
        .collect()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}
