//! Element-wise activations (f32), matching PyTorch's definitions, and the
//! row softmax the attention kernels share.
//!
//! [`apply`] is the scalar reference (libm `erff`, `exp`, `tanh`); the slice
//! forms run eight lanes at a time with AVX2/FMA when the CPU has them: `exp`
//! is the Cephes polynomial (≈1 ulp), and `erf` is the Abramowitz–Stegun
//! 7.1.26 form (absolute error < 1.5e-7) that PyTorch's own vectorised CPU
//! GELU uses, so the fast path follows the peer closely.

use crate::backend::Activation;

/// One activation applied to one value.
#[inline]
pub fn apply(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // sqrt(2/pi)
            0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
        }
        Activation::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Relu => x.max(0.0),
    }
}

/// `act` applied to every value of `xs` in place.
pub fn apply_slice(act: Activation, xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx2::apply(act, xs) };
        return;
    }
    xs.iter_mut().for_each(|x| *x = apply(act, *x));
}

/// `xs = softmax(xs)` (max-subtracted, like PyTorch).
pub fn softmax(xs: &mut [f32]) {
    if xs.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx2::softmax(xs) };
        return;
    }
    let mx = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0f32;
    for x in xs.iter_mut() {
        *x = (*x - mx).exp();
        z += *x;
    }
    xs.iter_mut().for_each(|x| *x /= z);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::backend::Activation;

    /// `e^x` per lane (Cephes `expf`): `x = n·ln2 + r`, a degree-5 polynomial
    /// in `r`, times `2^n`; inputs clamped to ±88.376 (0 and f32::MAX ends).
    #[target_feature(enable = "avx2,fma")]
    fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-88.376_26)),
            _mm256_set1_ps(88.376_26),
        );
        let n = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut y = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(
            y,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
    }

    /// `erf` per lane, Abramowitz–Stegun 7.1.26 (as in PyTorch's `Vectorized<float>::erf`).
    #[target_feature(enable = "avx2,fma")]
    fn erf(x: __m256) -> __m256 {
        let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
        let a = _mm256_xor_ps(x, sign);
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.327_591_1), a, one));
        let mut p = _mm256_set1_ps(1.061_405_4);
        for c in [-1.453_152_1, 1.421_413_7, -0.284_496_72, 0.254_829_6] {
            p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c));
        }
        let e = exp(_mm256_xor_ps(_mm256_mul_ps(a, a), _mm256_set1_ps(-0.0)));
        let y = _mm256_fnmadd_ps(_mm256_mul_ps(p, t), e, one);
        _mm256_xor_ps(y, sign)
    }

    /// `x / (1 + e^(-c·x))`: SiLU (`c = 1`) and quick GELU (`c = 1.702`).
    #[target_feature(enable = "avx2,fma")]
    fn sigmoid_times(x: __m256, c: f32) -> __m256 {
        let e = exp(_mm256_mul_ps(x, _mm256_set1_ps(-c)));
        _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e))
    }

    #[target_feature(enable = "avx2,fma")]
    fn one(act: Activation, x: __m256) -> __m256 {
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        let one = _mm256_set1_ps(1.0);
        match act {
            Activation::Gelu => {
                let e = erf(_mm256_mul_ps(
                    x,
                    _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
                ));
                _mm256_mul_ps(half_x, _mm256_add_ps(one, e))
            }
            Activation::GeluTanh => {
                // tanh(u) = 1 - 2 / (e^(2u) + 1), u clamped where tanh is ±1 in f32.
                let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
                let u = _mm256_mul_ps(
                    _mm256_set1_ps(0.797_884_6),
                    _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044_715), x),
                );
                let u = _mm256_min_ps(_mm256_max_ps(u, _mm256_set1_ps(-9.0)), _mm256_set1_ps(9.0));
                let e = exp(_mm256_add_ps(u, u));
                let th = _mm256_sub_ps(
                    one,
                    _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
                );
                _mm256_mul_ps(half_x, _mm256_add_ps(one, th))
            }
            Activation::QuickGelu => sigmoid_times(x, 1.702),
            Activation::Silu => sigmoid_times(x, 1.0),
            Activation::Relu => _mm256_max_ps(x, _mm256_setzero_ps()),
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn apply(act: Activation, xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` is 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), one(act, _mm256_loadu_ps(c.as_ptr()))) };
        }
        tail(chunks.into_remainder(), |v| one(act, v));
    }

    /// `f` on the last `< 8` values, through a padded register.
    #[target_feature(enable = "avx2,fma")]
    fn tail(xs: &mut [f32], f: impl Fn(__m256) -> __m256) {
        if xs.is_empty() {
            return;
        }
        let mut buf = [0f32; 8];
        buf[..xs.len()].copy_from_slice(xs);
        // SAFETY: `buf` is 8 floats.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr()))) };
        let n = xs.len();
        xs.copy_from_slice(&buf[..n]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn softmax(xs: &mut [f32]) {
        let mx = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let m = _mm256_set1_ps(mx);
        let mut zv = _mm256_setzero_ps();
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` is 8 floats.
            unsafe {
                let e = exp(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m));
                zv = _mm256_add_ps(zv, e);
                _mm256_storeu_ps(c.as_mut_ptr(), e);
            }
        }
        let rest = chunks.into_remainder();
        tail(rest, |v| exp(_mm256_sub_ps(v, m)));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` is 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), zv) };
        let z: f32 = lanes.iter().sum::<f32>() + rest.iter().sum::<f32>();
        let inv = 1.0 / z;
        xs.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_values() {
        // torch.nn.functional.gelu(torch.tensor([-3., -1., 0.5, 2.]))
        let want = [-0.004_049_73, -0.158_655_26, 0.345_731_37, 1.954_499_7];
        for (x, w) in [-3f32, -1.0, 0.5, 2.0].iter().zip(want) {
            assert!((apply(Activation::Gelu, *x) - w).abs() < 1e-6, "gelu({x})");
        }
        // gelu(x, approximate='tanh') at 1.0 and silu(1.0)
        assert!((apply(Activation::GeluTanh, 1.0) - 0.841_192).abs() < 1e-6);
        assert!((apply(Activation::Silu, 1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((apply(Activation::QuickGelu, 1.0) - 0.845_795_4).abs() < 1e-6);
        assert_eq!(apply(Activation::Relu, -2.0), 0.0);
    }

    #[test]
    fn slice_paths_match_the_reference() {
        let xs: Vec<f32> = (0..2003).map(|i| (i as f32 - 1000.0) * 0.0123).collect();
        for act in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::QuickGelu,
            Activation::Silu,
            Activation::Relu,
        ] {
            let mut fast = xs.clone();
            apply_slice(act, &mut fast);
            for (x, y) in xs.iter().zip(&fast) {
                let want = apply(act, *x);
                let tol = 1e-6 * want.abs().max(1.0);
                assert!((y - want).abs() <= tol, "{act:?}({x}) = {y}, want {want}");
            }
        }
    }

    #[test]
    fn softmax_matches_f64() {
        for n in [1, 7, 8, 77, 577] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0).collect();
            let mx = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = xs.iter().map(|&x| (x as f64 - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            let mut got = xs.clone();
            softmax(&mut got);
            for (g, e) in got.iter().zip(&e) {
                let want = e / z;
                assert!(
                    (*g as f64 - want).abs() <= 1e-6 * want.max(1e-3),
                    "n={n}: {g} vs {want}"
                );
            }
        }
    }
}
