//! Helpers shared by the parity tests: fixture JSON and relative error.
#![allow(dead_code)] // each test binary uses a subset

use std::path::Path;

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
