//! Image bytes in, pixels and hashes out.
//!
//! Every entry point takes untrusted bytes and returns a typed [`ImageError`]
//! instead of panicking: lakes hold corrupt, truncated, hostile and non-image
//! payloads as a matter of course.

mod decode;
mod hash;
mod jpeg_dc;
pub mod preprocess;
mod thumbnail;

pub use ::image::DynamicImage;
pub use decode::{
    DecodeLimits, ImageError, ImageInfo, LumaPlane, decode, decode_luma_fast, probe, to_luma,
};
pub use hash::{dhash, dhash_luma, hamming, phash, phash_luma};
pub use thumbnail::thumbnail_jpeg;
