//! Compute kernels for lakecap, grouped by op family.
//!
//! Each family exposes plain, readable CPU code first; fast paths and other
//! backends (CUDA, through cudarc) implement the same contracts and are tested
//! against these references by relative error.
//!
//! The model-facing seam is [`Backend`]: a trait over an opaque device tensor
//! with the ops transformer models need (linear, layer norm, fused attention,
//! activations, embedding lookup, pooling, top-k, image preprocessing).
//! [`cpu::Cpu`] implements it with f32 compute over f32/f16/bf16 or
//! block-quantised storage,
//! GEMMs through the `gemm` crate and rayon for the rest; [`cuda::Cuda`]
//! implements the same trait with kernels from `kernels/cu/` (one file per op
//! family, compiled by NVRTC for the device) and cuBLAS, with f16/bf16 weights
//! on tensor cores ([`cuda::Precision`]), so models never know which device
//! runs them. [`backend::check`] holds the shape checks every backend shares.
//!
//! Families:
//! - `cpu::{gemm, norm, attention, activation}` and `cu/{norm, attention,
//!   elementwise, rope, cast, topk}.cu`: the transformer and decoding ops,
//!   each with a plain `*_ref`.
//! - [`image`]: pixel-exact ports of the resamplers that reference image
//!   pipelines use (Pillow's `Image.resize`), on interleaved `u8` pixels, and
//!   [`image::PixelPlan`], a processor's resize-crop-normalise-patch steps;
//!   `cu/image.cu` runs them on a GPU with the same arithmetic. The
//!   perceptual hashes and every model preprocessor resize through here, so
//!   "the same pixels as Python" is decided in one place.
//! - `cpu::conv` and `cu/conv.cu`: what a convnet adds (im2col patches for
//!   convolutions as GEMMs, max and average pooling), over NHWC images.
//! - [`quant`]: GGML's block-quantised formats (Q4_0 … Q6_K) and their
//!   dequantisation: GGUF weights stay quantised in the CPU backend's memory.

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod image;
pub mod quant;

pub use backend::{Activation, Backend, HostData, KernelError, Mask, Pool, Pos, Rope, Window};
pub use cpu::{Cpu, CpuTensor};
pub use cuda::{Cuda, CudaTensor};
