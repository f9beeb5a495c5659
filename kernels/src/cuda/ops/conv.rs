//! Convnet ops on the device (`conv.cu`): `im2col` patches (the GEMM is
//! cuBLAS, through `linear`) and max/average pooling, over NHWC images.

use cudarc::driver::{DeviceRepr, PushKernelArg};

use crate::backend::{Pool, Result, Window, check};
use crate::cuda::{Cuda, CudaTensor, dev, grid};

/// `conv.cu`'s `Win`, passed to the kernels by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Win {
    n: i32,
    h: i32,
    w: i32,
    c: i32,
    oh: i32,
    ow: i32,
    kh: i32,
    kw: i32,
    sh: i32,
    sw: i32,
    pt: i32,
    pl: i32,
}

// SAFETY: plain old data with the C layout of `conv.cu`'s `struct Win`.
unsafe impl DeviceRepr for Win {}

/// The kernels' geometry of `win` over `x`, and the output's element count.
fn geometry(op: &'static str, x: &CudaTensor, win: &Window, k: usize) -> Result<(Win, usize)> {
    let (n, oh, ow, c) = check::window(op, &x.shape, win)?;
    let g = Win {
        n: n as i32,
        h: x.shape[1] as i32,
        w: x.shape[2] as i32,
        c: c as i32,
        oh: oh as i32,
        ow: ow as i32,
        kh: win.kernel.0 as i32,
        kw: win.kernel.1 as i32,
        sh: win.stride.0 as i32,
        sw: win.stride.1 as i32,
        pt: win.pad[0] as i32,
        pl: win.pad[1] as i32,
    };
    Ok((g, n * oh * ow * k))
}

pub(super) fn im2col(cuda: &Cuda, x: &CudaTensor, win: &Window) -> Result<CudaTensor> {
    let c = x.shape.last().copied().unwrap_or(0);
    let k = win.kernel.0 * win.kernel.1 * c;
    let (g, len) = geometry("im2col", x, win, k)?;
    let x_w = cuda.wide(x)?;
    let mut y = cuda.out::<f32>(len)?;
    let mut l = cuda.stream.launch_builder(cuda.f("im2col_f32"));
    l.arg(&*x_w).arg(&mut y).arg(&g);
    // SAFETY: argument list matches the kernel signature; sizes were checked.
    unsafe { l.launch(grid(len)) }.map_err(dev)?;
    let shape = vec![g.n as usize, g.oh as usize, g.ow as usize, k];
    Ok(CudaTensor::f32(shape, y))
}

pub(super) fn pool2d(cuda: &Cuda, x: &CudaTensor, win: &Window, pool: Pool) -> Result<CudaTensor> {
    let c = x.shape.last().copied().unwrap_or(0);
    let (g, len) = geometry("pool2d", x, win, c)?;
    let mode: i32 = match pool {
        Pool::Max => 0,
        Pool::Avg => 1,
    };
    let x_w = cuda.wide(x)?;
    let mut y = cuda.out::<f32>(len)?;
    let mut l = cuda.stream.launch_builder(cuda.f("pool2d_f32"));
    l.arg(&*x_w).arg(&mut y).arg(&g).arg(&mode);
    // SAFETY: argument list matches the kernel signature; sizes were checked.
    unsafe { l.launch(grid(len)) }.map_err(dev)?;
    let shape = vec![g.n as usize, g.oh as usize, g.ow as usize, c];
    Ok(CudaTensor::f32(shape, y))
}
