//! Element-wise ops, gathers and pooling (`elementwise.cu`), one thread per
//! output element: activations, `add` (broadcast over leading axes), the fused
//! `act_mul`, embedding lookups and row gathers (reading f32, f16 or bf16
//! tables directly), `prepend_row` and `masked_mean`.

use cudarc::driver::PushKernelArg;

use crate::backend::{Activation, Result, check};
use crate::cuda::tensor::{Buf, Dtype};
use crate::cuda::{Cuda, CudaTensor, dev, grid};

/// The activation's number in `elementwise.cu`'s `act`.
fn act_mode(act: Activation) -> i32 {
    match act {
        Activation::Gelu => 0,
        Activation::GeluTanh => 1,
        Activation::QuickGelu => 2,
        Activation::Silu => 3,
        Activation::Relu => 4,
    }
}

pub(super) fn activation(cuda: &Cuda, x: &CudaTensor, act: Activation) -> Result<CudaTensor> {
    let x_w = cuda.wide(x)?;
    let (n, mode) = (x.len(), act_mode(act));
    let mut y = cuda.out::<f32>(n)?;
    let mut l = cuda.stream.launch_builder(cuda.f("activation_f32"));
    l.arg(&*x_w).arg(&mut y).arg(&n).arg(&mode);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(grid(n)) }.map_err(dev)?;
    Ok(CudaTensor::f32(x.shape.clone(), y))
}

pub(super) fn add(cuda: &Cuda, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
    broadcast(cuda, "add_f32", a, b)
}

pub(super) fn act_mul(
    cuda: &Cuda,
    gate: &CudaTensor,
    up: &CudaTensor,
    act: Activation,
) -> Result<CudaTensor> {
    check::act_mul(&gate.shape, &up.shape)?;
    let (g, u) = (cuda.wide(gate)?, cuda.wide(up)?);
    let (n, mode) = (gate.len(), act_mode(act));
    let mut y = cuda.out::<f32>(n)?;
    let mut l = cuda.stream.launch_builder(cuda.f("act_mul_f32"));
    l.arg(&*g).arg(&*u).arg(&mut y).arg(&n).arg(&mode);
    // SAFETY: argument list matches the kernel signature; equal shapes were checked.
    unsafe { l.launch(grid(n)) }.map_err(dev)?;
    Ok(CudaTensor::f32(gate.shape.clone(), y))
}

pub(super) fn embedding(cuda: &Cuda, table: &CudaTensor, ids: &[u32]) -> Result<CudaTensor> {
    let (_, d) = check::embedding(&table.shape, ids)?;
    gather(cuda, table, ids, d)
}

pub(super) fn gather_rows(cuda: &Cuda, x: &CudaTensor, index: &[usize]) -> Result<CudaTensor> {
    let d = check::gather_rows(&x.shape, index)?;
    let idx: Vec<u32> = index.iter().map(|&i| i as u32).collect();
    gather(cuda, x, &idx, d)
}

pub(super) fn prepend_row(cuda: &Cuda, x: &CudaTensor, row: &CudaTensor) -> Result<CudaTensor> {
    let (b, s, d) = check::prepend_row(&x.shape, &row.shape)?;
    let x_w = cuda.wide(x)?;
    let row_w = cuda.wide(row)?;
    let (b, s, d) = (b as i32, s as i32, d as i32);
    let n = (b * (s + 1) * d) as usize;
    let mut y = cuda.out::<f32>(n)?;
    let mut l = cuda.stream.launch_builder(cuda.f("prepend_row_f32"));
    l.arg(&*x_w)
        .arg(&*row_w)
        .arg(&mut y)
        .arg(&b)
        .arg(&s)
        .arg(&d);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(grid(n)) }.map_err(dev)?;
    Ok(CudaTensor::f32(
        vec![b as usize, s as usize + 1, d as usize],
        y,
    ))
}

pub(super) fn masked_mean(cuda: &Cuda, x: &CudaTensor, lens: &[usize]) -> Result<CudaTensor> {
    let (b, s, d) = check::masked_mean(&x.shape, lens)?;
    let x_w = cuda.wide(x)?;
    let (b, s, d) = (b as i32, s as i32, d as i32);
    let l32: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let lens_d = cuda.ints(&l32)?;
    let n = (b * d) as usize;
    let mut y = cuda.out::<f32>(n)?;
    let mut l = cuda.stream.launch_builder(cuda.f("masked_mean_f32"));
    l.arg(&*x_w)
        .arg(&lens_d)
        .arg(&mut y)
        .arg(&b)
        .arg(&s)
        .arg(&d);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(grid(n)) }.map_err(dev)?;
    Ok(CudaTensor::f32(vec![b as usize, d as usize], y))
}

/// `a op b` with `b` broadcast over `a`'s leading axes (`add_f32`).
fn broadcast(cuda: &Cuda, kernel: &str, a: &CudaTensor, b: &CudaTensor) -> Result<CudaTensor> {
    check::add(&a.shape, &b.shape)?;
    let a_w = cuda.wide(a)?;
    let b_w = cuda.wide(b)?;
    let (n, bn) = (a.len(), b.len());
    let mut y = cuda.out::<f32>(n)?;
    let mut l = cuda.stream.launch_builder(cuda.f(kernel));
    l.arg(&*a_w).arg(&*b_w).arg(&mut y).arg(&n).arg(&bn);
    // SAFETY: argument list matches the kernel signature.
    unsafe { l.launch(grid(n)) }.map_err(dev)?;
    Ok(CudaTensor::f32(a.shape.clone(), y))
}

/// Rows `ids` of `src` viewed as `[_, d]` (f32 rows out of any storage).
fn gather(cuda: &Cuda, src: &CudaTensor, ids: &[u32], d: usize) -> Result<CudaTensor> {
    let rows = ids.len();
    let idx = cuda.uints(if ids.is_empty() { &[0] } else { ids })?;
    let mut y = cuda.out::<f32>(rows * d)?;
    let di = d as i32;
    let kernel = match src.dtype {
        Dtype::F32 => "embedding_f32",
        Dtype::F16 => "embedding_f16",
        Dtype::Bf16 => "embedding_bf16",
    };
    let mut l = cuda.stream.launch_builder(cuda.f(kernel));
    match &src.buf {
        Buf::F32(b) => l.arg(b),
        Buf::Half(b) => l.arg(b),
    };
    l.arg(&idx).arg(&mut y).arg(&rows).arg(&di);
    // SAFETY: argument list matches the kernel signature; ids were
    // range-checked by the caller.
    unsafe { l.launch(grid(rows * d)) }.map_err(dev)?;
    Ok(CudaTensor::f32(vec![rows, d], y))
}
