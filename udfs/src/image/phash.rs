//! `phash(img [, mode])`: perceptual DCT hash, bit-identical to Python
//! `imagehash.phash`, or faster from JPEGs' DC coefficients.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;
use lakecap_models::image::phash_luma;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit perceptual hash (DCT of a 32x32 Lanczos thumbnail), bit-identical to Python \
         imagehash.phash with default sizes; compare with hamming(). mode 'fast' reads a \
         JPEG of 256 px or more at 1/8 scale from its DC coefficients only (no inverse DCT, chroma \
         or colour conversion; 4-10x imagehash) and decodes smaller JPEGs to luma only: hashes close \
         to the exact ones (identical on the real photos; mean 1.5 bits apart on the sample lake's \
         flat generated images) but not bit-identical. Undecodable \
         images give NULL and a counted warning (or an error under lakecap.on_error = 'fail').",
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
