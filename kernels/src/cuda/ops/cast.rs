//! Casts between f32 and the 16-bit storage types (`cast.cu`), one thread
//! per element: ops read f32, so a half tensor is widened into a temporary
//! first ([`Cuda::wide`]), and a half GEMM narrows its f32 activations to the
//! weights' type ([`Cuda::narrow`]).

use std::ops::Deref;

use cudarc::driver::{CudaSlice, PushKernelArg};

use crate::backend::Result;
use crate::cuda::tensor::{Buf, Dtype};
use crate::cuda::{Cuda, CudaTensor, dev, grid};

/// f32 contents of a tensor: its own buffer, or a widened copy.
pub(crate) enum Wide<'a> {
    Borrowed(&'a CudaSlice<f32>),
    Owned(CudaSlice<f32>),
}

impl Deref for Wide<'_> {
    type Target = CudaSlice<f32>;
    fn deref(&self) -> &CudaSlice<f32> {
        match self {
            Wide::Borrowed(s) => s,
            Wide::Owned(s) => s,
        }
    }
}

impl Cuda {
    /// The f32 contents of `t` (a widened copy when it is stored half).
    pub(crate) fn wide<'a>(&self, t: &'a CudaTensor) -> Result<Wide<'a>> {
        let bits = match &t.buf {
            Buf::F32(s) => return Ok(Wide::Borrowed(s)),
            Buf::Half(b) => b,
        };
        let n = t.len();
        let mut y = self.out::<f32>(n)?;
        let kernel = match t.dtype {
            Dtype::Bf16 => "widen_bf16",
            _ => "widen_f16",
        };
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(bits).arg(&mut y).arg(&n);
        // SAFETY: argument list matches the kernel signature; n values each side.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(Wide::Owned(y))
    }

    /// `x` (f32 values) narrowed to `dtype`'s 16-bit words, for a half GEMM.
    pub(crate) fn narrow(
        &self,
        x: &CudaSlice<f32>,
        n: usize,
        dtype: Dtype,
    ) -> Result<CudaSlice<u16>> {
        let mut y = self.out::<u16>(n)?;
        let kernel = match dtype {
            Dtype::Bf16 => "narrow_bf16",
            _ => "narrow_f16",
        };
        let mut l = self.stream.launch_builder(self.f(kernel));
        l.arg(x).arg(&mut y).arg(&n);
        // SAFETY: argument list matches the kernel signature; n values each side.
        unsafe { l.launch(grid(n)) }.map_err(dev)?;
        Ok(y)
    }
}
