//! Normalisations over the last axis (`norm.cu`): layer norm, RMS norm and L2
//! normalisation, one 256-thread block per row.

use cudarc::driver::PushKernelArg;

use crate::backend::{Result, check};
use crate::cuda::{Cuda, CudaTensor, dev, per_row};

pub(super) fn layer_norm(
    cuda: &Cuda,
    x: &CudaTensor,
    gamma: &CudaTensor,
    beta: &CudaTensor,
    eps: f32,
) -> Result<CudaTensor> {
    let d = check::layer_norm(&x.shape, &gamma.shape, &beta.shape)?;
    let x_w = cuda.wide(x)?;
    let gamma_w = cuda.wide(gamma)?;
    let beta_w = cuda.wide(beta)?;
    let rows = x.len() / d.max(1);
    let mut y = cuda.out::<f32>(x.len())?;
    if rows == 0 {
        return Ok(CudaTensor::f32(x.shape.clone(), y));
    }
    let di = d as i32;
    let mut l = cuda.stream.launch_builder(cuda.f("layer_norm_f32"));
    l.arg(&*x_w)
        .arg(&*gamma_w)
        .arg(&*beta_w)
        .arg(&mut y)
        .arg(&di)
        .arg(&eps);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
    Ok(CudaTensor::f32(x.shape.clone(), y))
}

pub(super) fn rms_norm(
    cuda: &Cuda,
    x: &CudaTensor,
    gamma: &CudaTensor,
    eps: f32,
) -> Result<CudaTensor> {
    let d = check::rms_norm(&x.shape, &gamma.shape)?;
    let x_w = cuda.wide(x)?;
    let gamma_w = cuda.wide(gamma)?;
    let rows = x.len() / d.max(1);
    let mut y = cuda.out::<f32>(x.len())?;
    if rows > 0 {
        let di = d as i32;
        let mut l = cuda.stream.launch_builder(cuda.f("rms_norm_f32"));
        l.arg(&*x_w).arg(&*gamma_w).arg(&mut y).arg(&di).arg(&eps);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
    }
    Ok(CudaTensor::f32(x.shape.clone(), y))
}

pub(super) fn l2_normalize(cuda: &Cuda, x: &CudaTensor) -> Result<CudaTensor> {
    let x_w = cuda.wide(x)?;
    let d = x.last_dim();
    let rows = x.len() / d.max(1);
    let mut y = cuda.out::<f32>(x.len())?;
    if rows == 0 {
        return Ok(CudaTensor::f32(x.shape.clone(), y));
    }
    let di = d as i32;
    let mut l = cuda.stream.launch_builder(cuda.f("l2_normalize_f32"));
    l.arg(&*x_w).arg(&mut y).arg(&di);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
    Ok(CudaTensor::f32(x.shape.clone(), y))
}
