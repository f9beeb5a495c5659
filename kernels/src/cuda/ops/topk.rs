//! Per-row top-k (`topk.cu`), one block per row; values and indices are
//! copied back to the host, where [`Backend::top_k`](crate::Backend::top_k)
//! returns them.

use cudarc::driver::PushKernelArg;

use crate::backend::{Result, check};
use crate::cuda::{Cuda, CudaTensor, dev, per_row};

pub(super) fn top_k(cuda: &Cuda, x: &CudaTensor, k: usize) -> Result<(Vec<f32>, Vec<u32>)> {
    let (rows, n) = check::top_k(&x.shape, k)?;
    if rows == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let x_w = cuda.wide(x)?;
    let mut values = cuda.out::<f32>(rows * k)?;
    let mut indices = cuda.out::<u32>(rows * k)?;
    let (ni, ki) = (n as i32, k as i32);
    let mut l = cuda.stream.launch_builder(cuda.f("top_k_f32"));
    l.arg(&*x_w)
        .arg(&mut values)
        .arg(&mut indices)
        .arg(&ni)
        .arg(&ki);
    // SAFETY: argument list matches the kernel signature; k <= n was checked.
    unsafe { l.launch(per_row(rows)) }.map_err(dev)?;
    let mut v = cuda.stream.clone_dtoh(&values).map_err(dev)?;
    let mut i = cuda.stream.clone_dtoh(&indices).map_err(dev)?;
    v.truncate(rows * k);
    i.truncate(rows * k);
    Ok((v, i))
}
