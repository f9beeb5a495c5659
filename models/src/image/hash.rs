//! Perceptual hashes, bit-identical to Python `imagehash` 4.3 with default sizes.
//!
//! `imagehash.phash`: `convert("L")`, Lanczos resize to 32x32, 2-D DCT-II
//! (`scipy.fftpack.dct` on axis 0 then 1), top-left 8x8, bit = coefficient >
//! median. `imagehash.dhash`: `convert("L")`, Lanczos resize to 9x8, bit = pixel greater
//! than its left neighbour. Bits are packed row-major, first bit most significant,
//! so `format!("{:016x}", h)` equals `str(imagehash.phash(im))`.

use image::DynamicImage;

use super::{LumaPlane, to_luma};

const HASH: usize = 8;
const PHASH_SIDE: usize = HASH * 4;

fn pack(bits: impl Iterator<Item = bool>) -> u64 {
    bits.fold(0u64, |acc, b| (acc << 1) | u64::from(b))
}

/// Perceptual (DCT) hash of a decoded image.
pub fn phash(img: &DynamicImage) -> u64 {
    phash_luma(&LumaPlane::pixels(to_luma(img)))
}

/// [`phash`] on an 8-bit grayscale plane.
pub fn phash_luma(plane: &LumaPlane) -> u64 {
    let small = plane.thumbnail(PHASH_SIDE, PHASH_SIDE);
    // Unnormalised DCT-II, y[k] = 2 * sum x[n] cos(pi k (2n+1) / 2N), as scipy.fftpack.
    let n = PHASH_SIDE;
    let cos: Vec<f64> = (0..HASH * n)
        .map(|i| {
            let (k, x) = (i / n, i % n);
            2.0 * (std::f64::consts::PI * k as f64 * (2 * x + 1) as f64 / (2 * n) as f64).cos()
        })
        .collect();
    // Along axis 0 (columns), low rows only.
    let mut cols = [[0f64; PHASH_SIDE]; HASH];
    for (k, row) in cols.iter_mut().enumerate() {
        for (c, out) in row.iter_mut().enumerate() {
            *out = (0..n)
                .map(|r| f64::from(small[r * n + c]) * cos[k * n + r])
                .sum();
        }
    }
    // Along axis 1 (rows), low columns only.
    let mut low = [0f64; HASH * HASH];
    for (i, v) in low.iter_mut().enumerate() {
        let (r, k) = (i / HASH, i % HASH);
        *v = (0..n).map(|c| cols[r][c] * cos[k * n + c]).sum();
    }
    // scipy's FFT-based DCT returns exact zeros where the input is constant along
    // an axis; a direct sum leaves ~1e-13 of rounding noise there, which would
    // flip `> median` bits. Coefficients are sums of 8-bit pixels times cosines
    // (|c| <= 2^21), so snapping to 2^-20 removes only that noise.
    const GRID: f64 = (1u64 << 20) as f64;
    for v in &mut low {
        *v = (*v * GRID).round() / GRID;
    }
    let mut sorted = low;
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[31] + sorted[32]) / 2.0;
    pack(low.iter().map(|&v| v > median))
}

/// Difference (gradient) hash of a decoded image.
pub fn dhash(img: &DynamicImage) -> u64 {
    dhash_luma(&LumaPlane::pixels(to_luma(img)))
}

/// [`dhash`] on an 8-bit grayscale plane.
pub fn dhash_luma(plane: &LumaPlane) -> u64 {
    let small = plane.thumbnail(HASH + 1, HASH);
    pack((0..HASH * HASH).map(|i| {
        let (r, c) = (i / HASH, i % HASH);
        small[r * (HASH + 1) + c + 1] > small[r * (HASH + 1) + c]
    }))
}

/// Number of differing bits.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_has_zero_dhash() {
        let px = vec![200u8; 50 * 40];
        assert_eq!(dhash_luma(&LumaPlane::pixels((px, 50, 40))), 0);
    }

    #[test]
    fn horizontal_ramp_sets_every_dhash_bit() {
        let px: Vec<u8> = (0..90 * 8).map(|i| ((i % 90) * 2) as u8).collect();
        assert_eq!(dhash_luma(&LumaPlane::pixels((px, 90, 8))), u64::MAX);
    }

    #[test]
    fn hamming_counts_bits() {
        assert_eq!(hamming(0b1011, 0b0001), 2);
        assert_eq!(hamming(u64::MAX, 0), 64);
    }
}
