//! Compute kernels for lakecap, grouped by op family.
//!
//! Each family exposes plain, readable CPU code first; fast paths and other
//! backends (CUDA, through cudarc) implement the same contracts and are tested
//! against these references by relative error.
//!
//! Families today:
//! - [`image`]: pixel-exact ports of the resamplers that reference image
//!   pipelines use (Pillow's `Image.resize`), on interleaved `u8` pixels. The
//!   perceptual hashes and every model preprocessor resize through here, so
//!   "the same pixels as Python" is decided in one place.

pub mod image;
