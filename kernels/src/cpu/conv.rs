//! Convnet ops over NHWC images: [`im2col`] (a convolution's patches as
//! GEMM rows; the GEMM is [`super::gemm`]) and [`pool2d`], each with a plain
//! reference (`conv2d_ref`, `pool2d_ref`: direct loops over the window).
//!
//! Channels-last keeps a pixel's channels contiguous, so a patch row is
//! `kh · kw` copies of `c` values and a pointwise convolution needs no
//! patches at all.

use rayon::prelude::*;

use super::{CpuTensor, activation, gemm};
use crate::backend::{Activation, Pool, Result, Window, check};

/// Source row of output row `o` at window offset `k` (`None` in padding).
fn source(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < size)
}

/// Patch rows of the output pixels from `first` on (as many as `out` holds
/// rows of `kh·kw·c`), over `x` of `[_, h, w, c]`: rows in parallel, zeros
/// written where the window covers padding (so `out` may be reused).
fn patches(xv: &[f32], [h, w, c]: [usize; 3], win: &Window, first: usize, out: &mut [f32]) {
    let (oh, ow) = win.out_size(h, w).expect("checked by the caller");
    let (kh, kw) = win.kernel;
    out.par_chunks_mut(kh * kw * c)
        .enumerate()
        .for_each(|(i, row)| {
            let p = first + i;
            let (b, oy, ox) = (p / (oh * ow), p / ow % oh, p % ow);
            for (ky, band) in row.chunks_mut(kw * c).enumerate() {
                let Some(iy) = source(oy, ky, win.stride.0, win.pad[0], h) else {
                    band.fill(0.0);
                    continue;
                };
                for (kx, px) in band.chunks_mut(c).enumerate() {
                    match source(ox, kx, win.stride.1, win.pad[1], w) {
                        Some(ix) => px.copy_from_slice(&xv[((b * h + iy) * w + ix) * c..][..c]),
                        None => px.fill(0.0),
                    }
                }
            }
        });
}

/// [`crate::Backend::im2col`]: one output pixel's patch per row.
pub fn im2col(x: &CpuTensor, win: &Window) -> Result<CpuTensor> {
    let (n, oh, ow, c) = check::window("im2col", &x.shape, win)?;
    let k = win.kernel.0 * win.kernel.1 * c;
    let mut out = vec![0f32; n * oh * ow * k];
    patches(&x.f32(), [x.shape[1], x.shape[2], c], win, 0, &mut out);
    Ok(CpuTensor::from_f32(&[n, oh, ow, k], out))
}

/// Bytes of patches [`conv2d`] builds at a time: the GEMM reads them while
/// they are in cache, and a batch's patches (9× a 3×3 convolution's input,
/// 49× for a 7×7 stem) never exist whole.
pub const PATCH_BYTES: usize = 4 << 20;

/// [`crate::Backend::conv2d`] with its epilogue fused: the output starts as
/// the residual (or zeros) plus the bias, the GEMM accumulates into it, and
/// the activation runs in place, so a residual block's tail writes its
/// output once instead of three times. Patches are built and multiplied
/// [`PATCH_BYTES`] at a time. `exact`: as [`gemm::linear`]'s.
pub fn conv2d(
    x: &CpuTensor,
    w: &CpuTensor,
    b: Option<&CpuTensor>,
    win: &Window,
    residual: Option<&CpuTensor>,
    act: Option<Activation>,
    exact: bool,
) -> Result<CpuTensor> {
    let (n, oh, ow, c) = check::conv2d(&x.shape, &w.shape, win)?;
    let (o, k) = (w.shape[0], w.shape[1]);
    check::residual(residual.map(|r| r.shape.as_slice()), &[n, oh, ow, o])?;
    let m = n * oh * ow;
    let mut out = match residual {
        Some(r) => r.f32().into_owned(),
        None => vec![0f32; m * o],
    };
    if let Some(b) = b {
        check::linear(&[m, k], &w.shape, Some(&b.shape))?;
        let bv = b.f32();
        out.par_chunks_mut(o)
            .for_each(|row| row.iter_mut().zip(bv.iter()).for_each(|(y, b)| *y += b));
    }
    let xv = x.f32();
    if win.is_pointwise() {
        gemm::accumulate(&xv, w, &mut out, m, c, o, exact);
    } else {
        let rows = (PATCH_BYTES / (k * 4)).max(64).min(m.max(1));
        let mut buf = vec![0f32; rows * k];
        for first in (0..m).step_by(rows) {
            let r = rows.min(m - first);
            let (patch, dst) = (&mut buf[..r * k], &mut out[first * o..(first + r) * o]);
            patches(&xv, [x.shape[1], x.shape[2], c], win, first, patch);
            gemm::accumulate(patch, w, dst, r, k, o, exact);
        }
    }
    if let Some(act) = act {
        out.par_chunks_mut(4096)
            .for_each(|chunk| activation::apply_slice(act, chunk));
    }
    Ok(CpuTensor::from_f32(&[n, oh, ow, o], out))
}

/// [`crate::Backend::pool2d`]: one output pixel's channels per task.
pub fn pool2d(x: &CpuTensor, win: &Window, pool: Pool) -> Result<CpuTensor> {
    let (n, oh, ow, c) = check::window("pool2d", &x.shape, win)?;
    let (h, w) = (x.shape[1], x.shape[2]);
    let xv = x.f32();
    let mut out = vec![0f32; n * oh * ow * c];
    out.par_chunks_mut(c).enumerate().for_each(|(p, o)| {
        let (b, oy, ox) = (p / (oh * ow), p / ow % oh, p % ow);
        let init = match pool {
            Pool::Max => f32::NEG_INFINITY,
            Pool::Avg => 0.0,
        };
        o.fill(init);
        let mut count = 0usize;
        for ky in 0..win.kernel.0 {
            let Some(iy) = source(oy, ky, win.stride.0, win.pad[0], h) else {
                continue;
            };
            for kx in 0..win.kernel.1 {
                let Some(ix) = source(ox, kx, win.stride.1, win.pad[1], w) else {
                    continue;
                };
                count += 1;
                let px = &xv[((b * h + iy) * w + ix) * c..][..c];
                match pool {
                    Pool::Max => o.iter_mut().zip(px).for_each(|(a, &v)| *a = a.max(v)),
                    Pool::Avg => o.iter_mut().zip(px).for_each(|(a, &v)| *a += v),
                }
            }
        }
        if pool == Pool::Avg {
            let d = count.max(1) as f32;
            o.iter_mut().for_each(|a| *a /= d);
        }
    });
    Ok(CpuTensor::from_f32(&[n, oh, ow, c], out))
}

/// Direct convolution, f64 accumulation: the reference. `x [n, h, w, c]`,
/// `wt [o, kh, kw, c]`, output `[n, oh, ow, o]` flattened.
pub fn conv2d_ref(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    wt: &[f32],
    b: Option<&[f32]>,
    o: usize,
    win: &Window,
) -> Vec<f32> {
    let (oh, ow) = win.out_size(h, w).expect("window fits");
    let (kh, kw) = win.kernel;
    let mut out = Vec::with_capacity(n * oh * ow * o);
    for bi in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for oc in 0..o {
                    let mut acc = b.map_or(0.0, |b| b[oc] as f64);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * win.stride.0 + ky) as isize - win.pad[0] as isize;
                            let ix = (ox * win.stride.1 + kx) as isize - win.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ch in 0..c {
                                let xv = x[((bi * h + iy as usize) * w + ix as usize) * c + ch];
                                let wv = wt[((oc * kh + ky) * kw + kx) * c + ch];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
    }
    out
}

/// Pooling by direct loops: the reference. `x [n, h, w, c]`.
pub fn pool2d_ref(x: &[f32], [n, h, w, c]: [usize; 4], win: &Window, pool: Pool) -> Vec<f32> {
    let (oh, ow) = win.out_size(h, w).expect("window fits");
    let mut out = Vec::with_capacity(n * oh * ow * c);
    for bi in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut vals = Vec::new();
                    for ky in 0..win.kernel.0 {
                        for kx in 0..win.kernel.1 {
                            let iy = (oy * win.stride.0 + ky) as isize - win.pad[0] as isize;
                            let ix = (ox * win.stride.1 + kx) as isize - win.pad[1] as isize;
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                vals.push(x[((bi * h + iy as usize) * w + ix as usize) * c + ch]);
                            }
                        }
                    }
                    out.push(match pool {
                        Pool::Max => vals.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                        Pool::Avg => vals.iter().sum::<f32>() / vals.len().max(1) as f32,
                    });
                }
            }
        }
    }
    out
}
