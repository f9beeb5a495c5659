//! Separable image resampling, bit-exact with Pillow's `Image.resize` for 8-bit images.
//!
//! Port of Pillow 11 `src/libImaging/Resample.c` (`precompute_coeffs`,
//! `normalize_coeffs_8bpc`, `ImagingResampleHorizontal_8bpc`,
//! `ImagingResampleVertical_8bpc`, `ImagingResampleInner`). Pillow resamples in
//! two passes with 22-bit fixed-point coefficients and clips to `u8` between
//! the passes; matching that arithmetic exactly is what makes `phash`/`dhash`
//! bit-identical to Python's `imagehash` and model preprocessing identical to
//! transformers' PIL-based image processors.

/// Resampling filters with Pillow's definitions and supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.Resampling.BOX`
    Box,
    /// `Image.Resampling.BILINEAR` (triangle)
    Bilinear,
    /// `Image.Resampling.BICUBIC` (Keys, a = -0.5)
    Bicubic,
    /// `Image.Resampling.LANCZOS` (a.k.a. `ANTIALIAS`, 3 lobes)
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Fixed-point precision of Pillow's 8-bit path: 32 bits minus 8 for the
/// value and 2 for overshoot of negative-lobed filters.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per-output-pixel source window and fixed-point weights for one axis.
pub struct Coeffs {
    pub ksize: usize,
    /// (first source index, number of taps) per output index
    pub bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output index (the first `taps` used).
    pub weights: Vec<i32>,
}

/// Coefficients resizing an axis of `in_size` pixels to `out_size` (what the
/// GPU's resampling kernels apply).
pub fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    precompute_coeffs(in_size, 0.0, in_size as f64, out_size, filter)
}

fn precompute_coeffs(
    in_size: usize,
    in0: f64,
    in1: f64,
    out_size: usize,
    filter: Filter,
) -> Coeffs {
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let taps = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(taps) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..taps {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        bounds.push((xmin, taps));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes interleaved 8-bit pixels (`channels` in 1..=4) exactly as Pillow does
/// for modes L, LA, RGB, RGBA (without RGBA premultiplication, which Pillow
/// applies in Python before calling this core).
///
/// Panics if `src.len() != width * height * channels`; callers own the buffer.
pub fn resize_u8(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
    filter: Filter,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        width * height * channels,
        "pixel buffer does not match its dimensions"
    );
    assert!(
        out_width > 0 && out_height > 0,
        "output size must be positive"
    );
    assert!((1..=4).contains(&channels), "1 to 4 channels");
    let need_h = out_width != width;
    let need_v = out_height != height;
    if !need_h && !need_v {
        return src.to_vec();
    }
    let horiz = precompute_coeffs(width, 0.0, width as f64, out_width, filter);
    let vert = precompute_coeffs(height, 0.0, height as f64, out_height, filter);

    // Horizontal pass only over the source rows the vertical pass will read.
    let (tmp, tmp_w, row0) = if need_h {
        let first = vert.bounds[0].0;
        let last = vert.bounds[out_height - 1].0 + vert.bounds[out_height - 1].1;
        let rows = last - first;
        let mut tmp = vec![0u8; out_width * rows * channels];
        let row_pass = match channels {
            1 => horizontal_row::<1>,
            2 => horizontal_row::<2>,
            3 => horizontal_row::<3>,
            _ => horizontal_row::<4>,
        };
        for y in 0..rows {
            let src_row = &src[(y + first) * width * channels..][..width * channels];
            let dst_row = &mut tmp[y * out_width * channels..][..out_width * channels];
            row_pass(src_row, dst_row, &horiz);
        }
        (tmp, out_width, first)
    } else {
        (src.to_vec(), width, 0)
    };
    if !need_v {
        return tmp;
    }
    // Vertical pass a whole output row at a time: each tap adds one
    // contiguous source row into the accumulators (vectorisable), instead of
    // walking a column per output pixel.
    let stride = tmp_w * channels;
    let mut out = vec![0u8; stride * out_height];
    let mut acc = vec![0i32; stride];
    for (yy, &(ymin, taps)) in vert.bounds.iter().enumerate() {
        let k = &vert.weights[yy * vert.ksize..][..taps];
        acc.fill(1 << (PRECISION_BITS - 1));
        for (y, &w) in k.iter().enumerate() {
            let row = &tmp[(ymin - row0 + y) * stride..][..stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(p).wrapping_mul(w));
            }
        }
        for (d, &a) in out[yy * stride..][..stride].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// One row of the horizontal pass for `C` interleaved channels: each tap
/// reads a whole pixel, so the source row streams contiguously.
fn horizontal_row<const C: usize>(src: &[u8], dst: &mut [u8], horiz: &Coeffs) {
    for (xx, &(xmin, taps)) in horiz.bounds.iter().enumerate() {
        let k = &horiz.weights[xx * horiz.ksize..][..taps];
        let px = &src[xmin * C..(xmin + taps) * C];
        let mut acc = [1i32 << (PRECISION_BITS - 1); C];
        for (t, &w) in k.iter().enumerate() {
            for (c, a) in acc.iter_mut().enumerate() {
                *a = a.wrapping_add(i32::from(px[t * C + c]).wrapping_mul(w));
            }
        }
        for (c, &a) in acc.iter().enumerate() {
            dst[xx * C + c] = clip8(a);
        }
    }
}

/// An 8-bit RGB image (interleaved) and the (height, width) its processor's
/// resize step gives it (its own size: no resize).
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    pub px: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub resize: (usize, usize),
}

/// What a Hugging Face image processor does after decoding, as model input:
/// resize (Pillow-exact, `filter`), center crop to `crop` (zero padding where
/// the image is smaller), `(v · scale − mean) / std` per channel in f64, then
/// ViT patch rows `[patches, 3·p·p]` in (channel, ky, kx) order, patches
/// row-major, so that the stride-`p` patch convolution is one GEMM.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelPlan {
    pub filter: Filter,
    /// (height, width) of the model input.
    pub crop: (usize, usize),
    pub scale: f64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub patch: usize,
}

impl PixelPlan {
    pub fn num_patches(&self) -> usize {
        (self.crop.0 / self.patch) * (self.crop.1 / self.patch)
    }

    /// Top-left corner of the crop in the resized image (transformers'
    /// `(size - crop) // 2`, negative when the crop pads).
    pub fn crop_origin(&self, resized: (usize, usize)) -> (isize, isize) {
        (
            (resized.0 as isize - self.crop.0 as isize).div_euclid(2),
            (resized.1 as isize - self.crop.1 as isize).div_euclid(2),
        )
    }

    /// Patch rows of one image on the host (the reference the GPU's
    /// `image.cu` kernels match bit for bit).
    pub fn patches(&self, img: &RgbImage<'_>) -> Vec<f32> {
        let (rh, rw) = img.resize;
        let resized = if (rh, rw) == (img.height, img.width) {
            std::borrow::Cow::Borrowed(img.px)
        } else {
            std::borrow::Cow::Owned(resize_u8(
                img.px,
                img.width,
                img.height,
                3,
                rw,
                rh,
                self.filter,
            ))
        };
        let (top, left) = self.crop_origin(img.resize);
        let (p, gw) = (self.patch, self.crop.1 / self.patch);
        let mut out = Vec::with_capacity(self.num_patches() * 3 * p * p);
        for patch in 0..self.num_patches() {
            for c in 0..3 {
                for ky in 0..p {
                    for kx in 0..p {
                        let y = ((patch / gw) * p + ky) as isize + top;
                        let x = ((patch % gw) * p + kx) as isize + left;
                        let inside = (0..rh as isize).contains(&y) && (0..rw as isize).contains(&x);
                        let v = if inside {
                            resized[(y as usize * rw + x as usize) * 3 + c]
                        } else {
                            0
                        };
                        out.push(((f64::from(v) * self.scale - self.mean[c]) / self.std[c]) as f32);
                    }
                }
            }
        }
        out
    }
}

/// Per output pixel of one axis: the first source block, and the normalised
/// sums of Pillow's Lanczos weights (as [`coefficients`] computes them, in
/// f64) over the pixels of each consecutive block it reads. The sines step
/// by angle addition from pixel to pixel: a full-resolution axis has
/// hundreds of taps per output, and two `sin` calls each would cost more
/// than reading the blocks.
fn block_weights(size: usize, block: usize, out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = size as f64 / out as f64;
    let filterscale = scale.max(1.0);
    let support = Filter::Lanczos.support() * filterscale;
    let ss = 1.0 / filterscale;
    let pi = std::f64::consts::PI;
    let (step1, step3) = ((pi * ss).sin_cos(), (pi * ss / 3.0).sin_cos());
    (0..out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(size as i64) as usize;
            let first = xmin / block;
            let mut w = vec![0f64; xmax.saturating_sub(1).max(xmin) / block + 1 - first];
            let x0 = (xmin as f64 - center + 0.5) * ss;
            let (mut s1, mut c1) = (pi * x0).sin_cos();
            let (mut s3, mut c3) = (pi * x0 / 3.0).sin_cos();
            let mut total = 0.0;
            for x in xmin..xmax {
                let t = x0 + (x - xmin) as f64 * ss;
                let k = match t {
                    0.0 => 1.0,
                    _ if (-3.0..3.0).contains(&t) => (s1 / (pi * t)) * (s3 / (pi * t / 3.0)),
                    _ => 0.0,
                };
                w[x / block - first] += k;
                total += k;
                (s1, c1) = (s1 * step1.1 + c1 * step1.0, c1 * step1.1 - s1 * step1.0);
                (s3, c3) = (s3 * step3.1 + c3 * step3.0, c3 * step3.1 - s3 * step3.0);
            }
            let norm = if total != 0.0 { 1.0 / total } else { 1.0 };
            (first, w.iter().map(|v| (v * norm) as f32).collect())
        })
        .collect()
}

/// Resizes a plane of block means to `out_width x out_height` as Pillow's
/// Lanczos would resize the image they come from, if each block were flat:
/// every source value is the mean of a `block x block` square of a `width x
/// height` image (squares at the right and bottom edges cut by them), and
/// takes the sum of Pillow's weights (whole image) over its square's pixels. What a
/// hash computes from a JPEG read at 1/8 scale (its DC coefficients). Both
/// passes run in f32, clipped as Pillow clips; the result is rounded once.
///
/// Panics if `src` is not `ceil(width / block) x ceil(height / block)`.
pub fn resize_block_means(
    src: &[u8],
    width: usize,
    height: usize,
    block: usize,
    out_width: usize,
    out_height: usize,
) -> Vec<u8> {
    let (cols, rows) = (width.div_ceil(block), height.div_ceil(block));
    assert_eq!(
        src.len(),
        cols * rows,
        "block plane does not match its image"
    );
    let (wx, wy) = (
        block_weights(width, block, out_width),
        block_weights(height, block, out_height),
    );
    // Horizontal pass, clipped to 8 bits as Pillow clips its intermediate
    // image (negative lobes overshoot), but not rounded.
    let mut mid = vec![0f32; rows * out_width];
    for (row, out) in src.chunks_exact(cols).zip(mid.chunks_exact_mut(out_width)) {
        for ((first, w), o) in wx.iter().zip(out) {
            let acc: f32 = w
                .iter()
                .zip(&row[*first..])
                .map(|(a, &v)| a * f32::from(v))
                .sum();
            *o = acc.clamp(0.0, 255.0);
        }
    }
    // Vertical pass: whole rows of `mid` weighted into a row of sums.
    let mut out = Vec::with_capacity(out_width * out_height);
    let mut acc = vec![0f32; out_width];
    for (first, w) in &wy {
        acc.fill(0.0);
        for (wj, line) in w
            .iter()
            .zip(mid[first * out_width..].chunks_exact(out_width))
        {
            acc.iter_mut().zip(line).for_each(|(a, &m)| *a += wj * m);
        }
        out.extend(acc.iter().map(|&a| a.round().clamp(0.0, 255.0) as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy() {
        let px: Vec<u8> = (0..48).collect();
        assert_eq!(resize_u8(&px, 4, 4, 3, 4, 4, Filter::Lanczos), px);
    }

    #[test]
    fn constant_image_stays_constant_under_every_filter() {
        let px = vec![137u8; 37 * 23 * 2];
        for f in [
            Filter::Box,
            Filter::Bilinear,
            Filter::Bicubic,
            Filter::Lanczos,
        ] {
            for (w, h) in [(9, 8), (32, 32), (80, 50), (1, 1)] {
                let out = resize_u8(&px, 37, 23, 2, w, h, f);
                assert_eq!(out.len(), w * h * 2);
                assert!(out.iter().all(|&v| v == 137), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn box_downscale_by_two_averages_pairs() {
        // Pillow: Image.frombytes('L', (4, 1), bytes([0, 10, 20, 40])).resize((2, 1), BOX) -> [5, 30]
        let out = resize_u8(&[0, 10, 20, 40], 4, 1, 1, 2, 1, Filter::Box);
        assert_eq!(out, vec![5, 30]);
    }

    #[test]
    fn matches_pillow_outputs() {
        // Values printed by Pillow 11.3: Image.frombytes('L', size, data).resize(out, filter).
        let edge = resize_u8(&[0, 0, 255, 255], 4, 1, 1, 16, 1, Filter::Lanczos);
        assert_eq!(
            edge,
            vec![
                12, 6, 0, 0, 0, 0, 23, 89, 166, 232, 255, 255, 255, 255, 249, 243
            ]
        );
        let ramp: Vec<u8> = (0..150).step_by(10).map(|v| v as u8).collect();
        assert_eq!(
            resize_u8(&ramp, 5, 3, 1, 3, 7, Filter::Bicubic),
            vec![
                0, 15, 31, 8, 24, 40, 29, 45, 61, 54, 70, 86, 79, 95, 111, 100, 116, 132, 109, 125,
                141
            ]
        );
        assert_eq!(
            resize_u8(&ramp, 5, 3, 1, 2, 2, Filter::Bilinear),
            vec![29, 49, 91, 111]
        );
    }

    /// A plane of flat blocks resizes as Pillow resizes the full image to
    /// within one level (Pillow rounds between its passes; this does not),
    /// edge blocks cut by the image included; block 1 is Pillow's resize.
    #[test]
    fn block_means_resize_as_their_flat_image() {
        let (w, h, block) = (83usize, 61usize, 8usize);
        let (cols, rows) = (w.div_ceil(block), h.div_ceil(block));
        let plane: Vec<u8> = (0..cols * rows).map(|i| ((i * 37) % 251) as u8).collect();
        let full: Vec<u8> = (0..w * h)
            .map(|i| plane[(i / w / block) * cols + (i % w) / block])
            .collect();
        for (ow, oh) in [(32, 32), (9, 8), (5, 13)] {
            let want = resize_u8(&full, w, h, 1, ow, oh, Filter::Lanczos);
            let got = resize_block_means(&plane, w, h, block, ow, oh);
            let worst = want.iter().zip(&got).map(|(a, b)| a.abs_diff(*b)).max();
            let off = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert!(
                worst <= Some(1),
                "{ow}x{oh}: off by {worst:?} ({off} of {})",
                want.len()
            );
        }
        let px: Vec<u8> = (0..40 * 30).map(|i| (i * 7 % 256) as u8).collect();
        let one = resize_block_means(&px, 40, 30, 1, 9, 8);
        let pillow = resize_u8(&px, 40, 30, 1, 9, 8, Filter::Lanczos);
        assert!(one.iter().zip(&pillow).all(|(a, b)| a.abs_diff(*b) <= 1));
    }
}
