//! `linear` through cuBLAS (no kernel source): f32 weights run a TF32 (or,
//! under [`Precision::F32`](crate::cuda::Precision::F32), plain f32) GEMM;
//! f16/bf16 weights run a half GEMM on tensor cores after the activations are
//! narrowed (`cast.rs`), accumulating and writing f32 either way.

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};

use crate::backend::{Backend, Result, check};
use crate::cuda::tensor::{Buf, Dtype};
use crate::cuda::{Cuda, CudaTensor, dev};

/// `x·wᵀ (+ b)` over `x`'s last axis.
pub(super) fn linear(
    cuda: &Cuda,
    x: &CudaTensor,
    w: &CudaTensor,
    b: Option<&CudaTensor>,
) -> Result<CudaTensor> {
    let (m, k, n) = check::linear(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
    let x_w = cuda.wide(x)?;
    let mut y = cuda.out::<f32>(m * n)?;
    if m > 0 && n > 0 {
        match &w.buf {
            Buf::F32(wb) => gemm_f32(cuda, &x_w, wb, &mut y, m, k, n)?,
            Buf::Half(wb) => {
                let xh = cuda.narrow(&x_w, m * k, w.dtype)?;
                gemm_half(cuda, &xh, wb, w.dtype, &mut y, m, k, n)?;
            }
        }
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has an axis") = n;
    let y = CudaTensor::f32(shape, y);
    match b {
        Some(b) => cuda.add(&y, b),
        None => Ok(y),
    }
}

/// Row-major `y[m,n] = x[m,k]·w[n,k]ᵀ`, as cuBLAS's column-major
/// `yᵀ = w·xᵀ` (w seen as a transposed k×n matrix, x as k×m); TF32 tensor
/// cores unless the precision is f32.
fn gemm_f32(
    cuda: &Cuda,
    x: &CudaSlice<f32>,
    w: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
    m: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    let cfg = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: k as i32,
        ldb: k as i32,
        beta: 0.0f32,
        ldc: n as i32,
    };
    // SAFETY: buffer extents match the dimensions above.
    unsafe { cuda.blas.gemm(cfg, w, x, y) }.map_err(dev)
}

/// The same product with f16/bf16 `x` and `w` (16-bit words) on tensor
/// cores, accumulated and written in f32.
#[allow(clippy::too_many_arguments)]
fn gemm_half(
    cuda: &Cuda,
    x: &CudaSlice<u16>,
    w: &CudaSlice<u16>,
    dtype: Dtype,
    y: &mut CudaSlice<f32>,
    m: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    let half = match dtype {
        Dtype::Bf16 => cudaDataType::CUDA_R_16BF,
        _ => cudaDataType::CUDA_R_16F,
    };
    let (alpha, beta) = (1.0f32, 0.0f32);
    let (wp, _w) = w.device_ptr(&cuda.stream);
    let (xp, _x) = x.device_ptr(&cuda.stream);
    let (yp, _y) = y.device_ptr_mut(&cuda.stream);
    // SAFETY: pointers to live buffers of the extents above; the guards
    // order the call after their last writes on this stream.
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *cuda.blas.handle(),
            cublasOperation_t::CUBLAS_OP_T,
            cublasOperation_t::CUBLAS_OP_N,
            n as i32,
            m as i32,
            k as i32,
            (&alpha as *const f32).cast(),
            wp as *const _,
            half,
            k as i32,
            xp as *const _,
            half,
            k as i32,
            (&beta as *const f32).cast(),
            yp as *mut _,
            cudaDataType::CUDA_R_32F,
            n as i32,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(dev)
}
