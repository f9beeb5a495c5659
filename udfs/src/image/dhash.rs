//! `dhash(img [, mode])`: difference hash, bit-identical to Python
//! `imagehash.dhash`, or faster from JPEGs' DC coefficients.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::dhash_luma;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit difference hash (horizontal gradients of a 9x8 Lanczos thumbnail), bit-identical to Python \
         imagehash.dhash with default sizes; compare with hamming(). mode 'fast' reads a \
         JPEG of 256 px or more at 1/8 scale from its DC coefficients only (no inverse DCT, chroma \
         or colour conversion; 4-10x imagehash) and decodes smaller JPEGs to luma only: hashes close \
         to the exact ones (within 2 bits on the real photos) but not bit-identical. Undecodable \
         images give NULL and a counted warning (or an error under lakecap.on_error = 'fail').",
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
