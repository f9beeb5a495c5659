//! Device storage: f32 tensors, and f16/bf16 ones kept as raw 16-bit words
//! (weights of half-precision checkpoints, or converted under
//! [`Precision::F16`]/[`Precision::Bf16`]). Ops read f32; a half tensor given
//! to one is widened into a temporary first (`ops/cast.rs`), except where the
//! op reads half storage itself (the GEMM's weights, embedding tables).

use cudarc::driver::CudaSlice;
use half::{bf16, f16};

use super::{Cuda, Precision, dev};
use crate::backend::{HostData, Result};

/// What a tensor's elements are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

pub(crate) enum Buf {
    F32(CudaSlice<f32>),
    /// f16 or bf16 bits (the tensor's [`Dtype`] says which).
    Half(CudaSlice<u16>),
}

/// A tensor in device memory (row-major).
pub struct CudaTensor {
    pub shape: Vec<usize>,
    pub(crate) dtype: Dtype,
    pub(crate) buf: Buf,
}

impl CudaTensor {
    pub(crate) fn f32(shape: Vec<usize>, buf: CudaSlice<f32>) -> CudaTensor {
        CudaTensor {
            shape,
            dtype: Dtype::F32,
            buf: Buf::F32(buf),
        }
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub(crate) fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub(crate) fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

/// A KV cache in device memory: `slots × capacity` rows of `width` for keys
/// and for values, allocated up front; `filled[slot]` counts the rows written
/// (checked on the host so that reads of unwritten rows fail as on the CPU).
pub struct CudaKvCache {
    pub(crate) width: usize,
    pub(crate) capacity: usize,
    pub(crate) k: CudaSlice<f32>,
    pub(crate) v: CudaSlice<f32>,
    pub(crate) filled: Vec<usize>,
}

impl Cuda {
    /// Stores host data: f32 stays f32; half data stays half except under
    /// [`Precision::F32`]. `weight`: a checkpoint tensor, which
    /// [`Precision::F16`]/[`Precision::Bf16`] convert when it is a matrix.
    /// Vectors (biases, norm scales) are always f32: only f32 ops read them.
    pub(crate) fn store(
        &self,
        shape: &[usize],
        data: HostData<'_>,
        weight: bool,
    ) -> Result<CudaTensor> {
        let given = match data {
            HostData::F32(_) | HostData::Quant { .. } => Dtype::F32,
            HostData::F16(_) => Dtype::F16,
            HostData::BF16(_) => Dtype::Bf16,
        };
        let want = match self.precision {
            Precision::F32 => Dtype::F32,
            _ if shape.len() < 2 => Dtype::F32,
            Precision::F16 if weight => Dtype::F16,
            Precision::Bf16 if weight => Dtype::Bf16,
            _ => given,
        };
        let widened = || -> Vec<f32> {
            match data {
                HostData::F32(d) => d.to_vec(),
                HostData::F16(d) => d.iter().map(|x| x.to_f32()).collect(),
                HostData::BF16(d) => d.iter().map(|x| x.to_f32()).collect(),
                // Block-quantised weights run dequantised on a GPU.
                HostData::Quant { ty, bytes, len } => crate::quant::dequantize(ty, bytes, len),
            }
        };
        let buf = match (want, data) {
            (Dtype::F32, HostData::F32(d)) => Buf::F32(self.upload_f32(d)?),
            (Dtype::F32, _) => Buf::F32(self.upload_f32(&widened())?),
            (Dtype::F16, HostData::F16(d)) => Buf::Half(self.bits(d.iter().map(|x| x.to_bits()))?),
            (Dtype::Bf16, HostData::BF16(d)) => {
                Buf::Half(self.bits(d.iter().map(|x| x.to_bits()))?)
            }
            (Dtype::F16, _) => {
                Buf::Half(self.bits(widened().into_iter().map(|x| f16::from_f32(x).to_bits()))?)
            }
            (Dtype::Bf16, _) => {
                Buf::Half(self.bits(widened().into_iter().map(|x| bf16::from_f32(x).to_bits()))?)
            }
        };
        Ok(CudaTensor {
            shape: shape.to_vec(),
            dtype: want,
            buf,
        })
    }

    fn bits(&self, v: impl Iterator<Item = u16>) -> Result<CudaSlice<u16>> {
        let v: Vec<u16> = v.collect();
        if v.is_empty() {
            return self.out(1);
        }
        self.stream.clone_htod(&v).map_err(dev)
    }
}
