//! `phash(img)`: perceptual DCT hash, bit-identical to Python `imagehash.phash`.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::phash;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit perceptual hash (DCT of a 32x32 Lanczos thumbnail), bit-identical to Python \
         imagehash.phash with default sizes; compare with hamming(). Undecodable images give NULL \
         and a counted warning (or an error under lakecap.on_error = 'fail').",
        "phash(img)",
    )
    .with_argument(
        "img",
        "Encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF).",
    )
    .with_sql_example("SELECT key, phash(img) AS ph FROM lake;")
    .with_related_udf("dhash")
    .with_related_udf("hamming")
    .build()
});

image_hash_function!(PhashFunc = Phash("phash", phash));
