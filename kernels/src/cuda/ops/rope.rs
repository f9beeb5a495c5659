//! Rotary position embeddings (`rope.cu`, HF `rotate_half` layout), one
//! thread per rotated pair.

use cudarc::driver::PushKernelArg;

use crate::backend::{Result, Rope, check};
use crate::cuda::{Cuda, CudaTensor, dev, grid};

pub(super) fn rope(
    cuda: &Cuda,
    x: &CudaTensor,
    heads: usize,
    positions: &[usize],
    rope: Rope<'_>,
) -> Result<CudaTensor> {
    let (rows, d) = check::rope(&x.shape, heads, positions, rope.inv_freq)?;
    let x_w = cuda.wide(x)?;
    let mut y = cuda.out::<f32>(x.len())?;
    if rows > 0 {
        let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let pos = cuda.ints(&pos)?;
        let freq = cuda.stream.clone_htod(rope.inv_freq).map_err(dev)?;
        let (ri, hi, di) = (rows as i32, heads as i32, d as i32);
        let mut l = cuda.stream.launch_builder(cuda.f("rope_f32"));
        l.arg(&*x_w)
            .arg(&mut y)
            .arg(&pos)
            .arg(&freq)
            .arg(&ri)
            .arg(&hi)
            .arg(&di)
            .arg(&rope.scale);
        // SAFETY: argument list matches the kernel signature.
        unsafe { l.launch(grid(rows * heads * d / 2)) }.map_err(dev)?;
    }
    Ok(CudaTensor::f32(x.shape.clone(), y))
}
