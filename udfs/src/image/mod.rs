//! Image functions: decode-safe inspection (`image_info`, `image_error`),
//! perceptual hashes (`phash`, `dhash`) and their distance (`hamming`), and
//! previews (`thumbnail`).

pub(crate) mod dhash;
pub(crate) mod hamming;
pub(crate) mod image_error;
pub(crate) mod image_info;
pub(crate) mod phash;
pub(crate) mod thumbnail;
