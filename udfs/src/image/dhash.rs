//! `dhash(img)`: difference hash, bit-identical to Python `imagehash.dhash`.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::dhash;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit difference hash (horizontal gradients of a 9x8 Lanczos thumbnail), bit-identical to Python \
         imagehash.dhash with default sizes; compare with hamming(). Undecodable images give NULL \
         and a counted warning (or an error under lakecap.on_error = 'fail').",
        "dhash(img)",
    )
    .with_argument("img", "Encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF).")
    .with_sql_example("SELECT key, dhash(img) AS ph FROM lake;")
    .with_related_udf("phash")
    .with_related_udf("hamming")
    .build()
});

image_hash_function!(DhashFunc = Dhash("dhash", dhash));
