//! `phash(img [, mode])`: perceptual DCT hash, bit-identical to Python
//! `imagehash.phash`, or faster from luma-only JPEG decoding.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::phash_luma;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit perceptual hash (DCT of a 32x32 Lanczos thumbnail), bit-identical to Python \
         imagehash.phash with default sizes; compare with hamming(). mode 'fast' decodes JPEGs to their \
         luma channel only (no chroma transform or colour conversion): about 1.5x faster on JPEGs, \
         hashes nearly always equal to the exact ones but no longer guaranteed bit-identical. Undecodable images \
         give NULL and a counted warning (or an error under lakecap.on_error = 'fail').",
        "phash(img [, mode])",
    )
    .with_argument(
        "img",
        "Encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF).",
    )
    .with_argument("mode", "'exact' (the default) or 'fast'.")
    .with_sql_example("SELECT key, phash(img) AS ph, phash(img, 'fast') AS ph_fast FROM lake;")
    .with_related_udf("dhash")
    .with_related_udf("hamming")
    .build()
});

image_hash_function!(PhashFunc = Phash("phash", phash_luma));
