//! Image preprocessing on the device (`image.cu`): per image, the pixels go
//! up once, the two resampling passes apply the host's fixed-point
//! coefficients (`image::coefficients`), and one kernel crops, normalises and
//! writes the image's patch rows into the batch tensor. Same integer and f64
//! arithmetic as [`PixelPlan::patches`], so the result is bit-identical.

use cudarc::driver::{CudaSlice, PushKernelArg};

use crate::backend::{Result, check};
use crate::cuda::{Cuda, CudaTensor, dev, grid};
use crate::image::{Coeffs, Filter, PixelPlan, RgbImage, coefficients};

/// Coefficients as the kernels read them: `(first, taps)` pairs and weights.
struct DeviceCoeffs {
    ksize: i32,
    bounds: CudaSlice<i32>,
    weights: CudaSlice<i32>,
}

impl Cuda {
    fn coeffs(&self, c: &Coeffs) -> Result<DeviceCoeffs> {
        let bounds: Vec<i32> = c
            .bounds
            .iter()
            .flat_map(|&(first, taps)| [first as i32, taps as i32])
            .collect();
        Ok(DeviceCoeffs {
            ksize: c.ksize as i32,
            bounds: self.ints(&bounds)?,
            weights: self.ints(&c.weights)?,
        })
    }

    /// `src` (`img`'s pixels on the device) resized to `img.resize` as
    /// `resize_u8` does it: a horizontal pass over the source rows the
    /// vertical pass reads, then the vertical pass; `None` when the size is
    /// unchanged.
    fn resample(
        &self,
        src: &CudaSlice<u8>,
        img: &RgbImage<'_>,
        filter: Filter,
    ) -> Result<Option<CudaSlice<u8>>> {
        let (w, h) = (img.width, img.height);
        let (oh, ow) = img.resize;
        let (need_h, need_v) = (ow != w, oh != h);
        if !need_h && !need_v {
            return Ok(None);
        }
        let vert = coefficients(h, oh, filter);
        let first = vert.bounds[0].0;
        let horizontal = if need_h {
            let last = vert.bounds[oh - 1].0 + vert.bounds[oh - 1].1;
            let rows = last - first;
            let c = self.coeffs(&coefficients(w, ow, filter))?;
            let mut out = self.out::<u8>(ow * rows * 3)?;
            let (wi, owi, ri, fi, ch) = (w as i32, ow as i32, rows as i32, first as i32, 3i32);
            let mut l = self.stream.launch_builder(self.f("resample_h_u8"));
            l.arg(src)
                .arg(&mut out)
                .arg(&c.bounds)
                .arg(&c.weights)
                .arg(&c.ksize)
                .arg(&wi)
                .arg(&owi)
                .arg(&ri)
                .arg(&fi)
                .arg(&ch);
            // SAFETY: argument list matches the kernel signature; the source
            // windows lie inside the image (coefficients clamp them).
            unsafe { l.launch(grid(ow * rows * 3)) }.map_err(dev)?;
            Some(out)
        } else {
            None
        };
        if !need_v {
            return Ok(horizontal);
        }
        // The vertical pass reads the horizontal pass's rows (from `first`),
        // or the source itself.
        let (tmp, tmp_w, row0) = match &horizontal {
            Some(t) => (t, ow, first),
            None => (src, w, 0),
        };
        let c = self.coeffs(&vert)?;
        let stride = tmp_w * 3;
        let mut out = self.out::<u8>(oh * stride)?;
        let (si, ohi, r0) = (stride as i32, oh as i32, row0 as i32);
        let mut l = self.stream.launch_builder(self.f("resample_v_u8"));
        l.arg(tmp)
            .arg(&mut out)
            .arg(&c.bounds)
            .arg(&c.weights)
            .arg(&c.ksize)
            .arg(&si)
            .arg(&ohi)
            .arg(&r0);
        // SAFETY: as above; rows row0.. of tmp cover every window.
        unsafe { l.launch(grid(oh * stride)) }.map_err(dev)?;
        Ok(Some(out))
    }

    /// [`crate::Backend::pixel_patches`] on the device.
    pub(crate) fn device_pixel_patches(
        &self,
        images: &[RgbImage<'_>],
        plan: &PixelPlan,
    ) -> Result<CudaTensor> {
        check::pixel_patches(images, plan)?;
        let (np, row) = (plan.num_patches(), 3 * plan.patch * plan.patch);
        let per = np * row;
        let mut out = self.out::<f32>(images.len() * per)?;
        let norm = [
            plan.scale,
            plan.mean[0],
            plan.mean[1],
            plan.mean[2],
            plan.std[0],
            plan.std[1],
            plan.std[2],
        ];
        let norm = self.stream.clone_htod(&norm).map_err(dev)?;
        for (i, img) in images.iter().enumerate() {
            let src = self.stream.clone_htod(img.px).map_err(dev)?;
            let resized = self.resample(&src, img, plan.filter)?;
            let (top, left) = plan.crop_origin(img.resize);
            let (rh, rw) = img.resize;
            let args = [
                rh as i32,
                rw as i32,
                top as i32,
                left as i32,
                plan.crop.0 as i32,
                plan.crop.1 as i32,
                plan.patch as i32,
            ];
            let mut dst = out.slice_mut(i * per..(i + 1) * per);
            let mut l = self.stream.launch_builder(self.f("patchify_u8"));
            l.arg(resized.as_ref().unwrap_or(&src))
                .arg(&mut dst)
                .arg(&norm);
            for a in &args {
                l.arg(a);
            }
            // SAFETY: argument list matches the kernel signature; reads are
            // bounds-checked against the resized size, writes fill `dst`.
            unsafe { l.launch(grid(per)) }.map_err(dev)?;
        }
        Ok(CudaTensor::f32(vec![images.len(), np, row], out))
    }
}
