//! Embedding lakecap in your own Rust program: register its functions into a
//! DataFusion `SessionContext` you built, then query with them.
//!
//! `cargo run --example embed` prints the near-duplicate groups of a few
//! images; `cargo test --example embed` (part of `cargo test --workspace`)
//! asserts the output.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::UInt32Type;
use datafusion::prelude::SessionContext;

const ASTRONAUT: &[u8] = include_bytes!("../data/photos/astronaut.png");
const COFFEE: &[u8] = include_bytes!("../data/photos/coffee.png");

/// Returns (key, distance to the astronaut photo) for each image, closest first.
async fn distances() -> Result<Vec<(String, u32)>> {
    // Your own session, with whatever configuration you already use.
    let ctx = SessionContext::new();
    let diagnostics = lakecap::register(&ctx);

    // A re-encoded preview of the astronaut is a near-duplicate of it; coffee is not.
    let keys: StringArray = vec![Some("astronaut"), Some("coffee"), Some("broken")]
        .into_iter()
        .collect();
    let imgs: BinaryArray = vec![Some(ASTRONAUT), Some(COFFEE), Some(&b"not an image"[..])]
        .into_iter()
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("key", Arc::new(keys) as ArrayRef),
        ("img", Arc::new(imgs) as ArrayRef),
    ])?;
    ctx.register_batch("images", batch)?;

    let df = ctx
        .sql(
            "WITH ref AS (SELECT phash(thumbnail(img, 200)) AS ph FROM images WHERE key = 'astronaut')
             SELECT key, hamming(phash(img), ref.ph) AS d FROM images, ref
             WHERE phash(img) IS NOT NULL ORDER BY d, key",
        )
        .await?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let (k, d) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<UInt32Type>(),
        );
        out.extend((0..b.num_rows()).map(|i| (k.value(i).to_string(), d.value(i))));
    }
    // The undecodable row became NULL and a counted warning, not an error.
    assert!(diagnostics.total() >= 1, "the broken image is counted");
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    for (key, d) in distances().await? {
        println!("{key:<10} {d:>2} bits from the astronaut preview");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn embedded_session_finds_the_near_duplicate() {
        let rows = super::distances().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "astronaut");
        assert!(rows[0].1 <= 4, "{rows:?}");
        assert_eq!(rows[1].0, "coffee");
        assert!(rows[1].1 > 16, "{rows:?}");
    }
}
