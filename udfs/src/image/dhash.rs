//! `dhash(img [, mode])`: difference hash, bit-identical to Python
//! `imagehash.dhash`, or faster from luma-only JPEG decoding.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::dhash_luma;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit difference hash (horizontal gradients of a 9x8 Lanczos thumbnail), bit-identical to Python \
         imagehash.dhash with default sizes; compare with hamming(). mode 'fast' decodes JPEGs to their \
         luma channel only (no chroma transform or colour conversion): about 1.5x faster on JPEGs, \
         hashes nearly always equal to the exact ones but no longer guaranteed bit-identical. Undecodable images \
         give NULL and a counted warning (or an error under lakecap.on_error = 'fail').",
        "dhash(img [, mode])",
    )
    .with_argument("img", "Encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF).")
    .with_argument("mode", "'exact' (the default) or 'fast'.")
    .with_sql_example("SELECT key, dhash(img) AS dh FROM lake;")
    .with_related_udf("phash")
    .with_related_udf("hamming")
    .build()
});

image_hash_function!(DhashFunc = Dhash("dhash", dhash_luma));
