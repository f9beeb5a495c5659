//! GGML tensor types and their dequantisation to f32, block by block, as
//! ggml's `dequantize_row_*` (ggml-quants.c) and gguf-py's `quants.py` define
//! them: the plain reference that GGUF loading and the CPU backend's
//! block-quantised weights ([`crate::cpu::Data::Quant`]) both use. Layouts
//! (bytes per block of `block` values):
//!
//! | type | block | bytes | layout |
//! |------|-------|-------|--------|
//! | Q4_0 | 32 | 18 | d: f16, qs[16] (low nibbles first half, high second) |
//! | Q4_1 | 32 | 20 | d, m: f16, qs[16] |
//! | Q5_0 | 32 | 22 | d: f16, qh: u32, qs[16] |
//! | Q5_1 | 32 | 24 | d, m: f16, qh: u32, qs[16] |
//! | Q8_0 | 32 | 34 | d: f16, qs: i8[32] |
//! | Q4_K | 256 | 144 | d, dmin: f16, scales[12] (6-bit), qs[128] |
//! | Q5_K | 256 | 176 | d, dmin: f16, scales[12], qh[32], qs[128] |
//! | Q6_K | 256 | 210 | ql[128], qh[64], scales: i8[16], d: f16 |

use half::{bf16, f16};

/// A GGML tensor type id as stored in GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl GgmlType {
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// `(values per block, bytes per block)`.
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
        }
    }

    /// Bytes holding `n` values, or `None` when `n` is not a whole number of blocks.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        let (bv, bb) = self.block();
        n.is_multiple_of(bv).then(|| n / bv * bb)
    }
}

#[inline]
fn h(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The 6-bit scale and min `j` of a K-quant super-block (`get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (d as f32, m as f32)
}

/// Dequantises one block `b` into `y` (`y.len()` = values per block).
#[inline]
fn block(ty: GgmlType, b: &[u8], y: &mut [f32]) {
    match ty {
        GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => y[0] = h(b, 0),
        GgmlType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let d = h(b, 0);
            // Fixed-size arrays, one loop per case: these run for every
            // weight a decode step reads, and so must vectorise.
            let y: &mut [f32; 32] = y.try_into().expect("a Q4 block holds 32 values");
            if ty == GgmlType::Q4_0 {
                // Q4_0 stores q - 8, symmetric around zero.
                let qs: &[u8; 16] = b[2..18].try_into().expect("a Q4_0 block");
                for j in 0..16 {
                    y[j] = ((qs[j] & 0xF) as i32 - 8) as f32 * d;
                    y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            } else {
                // Q4_1 adds a minimum.
                let (m, qs): (f32, &[u8; 16]) =
                    (h(b, 2), b[4..20].try_into().expect("a Q4_1 block"));
                for j in 0..16 {
                    y[j] = (qs[j] & 0xF) as f32 * d + m;
                    y[j + 16] = (qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let d = h(b, 0);
            let (m, rest) = match ty {
                GgmlType::Q5_0 => (0.0, &b[2..]),
                _ => (h(b, 2), &b[4..]),
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            for (j, &q) in rest[4..20].iter().enumerate() {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                let (x0, x1) = ((q as u32 & 0xF) | h0, (q as u32 >> 4) | h1);
                if ty == GgmlType::Q5_0 {
                    y[j] = (x0 as i32 - 16) as f32 * d;
                    y[j + 16] = (x1 as i32 - 16) as f32 * d;
                } else {
                    y[j] = x0 as f32 * d + m;
                    y[j + 16] = x1 as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            let d = h(b, 0);
            let y: &mut [f32; 32] = y.try_into().expect("a Q8_0 block holds 32 values");
            let qs: &[u8; 32] = b[2..34].try_into().expect("a Q8_0 block");
            for j in 0..32 {
                y[j] = qs[j] as i8 as f32 * d;
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let (d, dmin) = (h(b, 0), h(b, 2));
            let scales = &b[4..16];
            let (qh, qs) = match ty {
                GgmlType::Q4K => (None, &b[16..144]),
                _ => (Some(&b[16..48]), &b[48..176]),
            };
            for (c, chunk) in y.chunks_mut(64).enumerate() {
                let (s1, m1) = scale_min_k4(2 * c, scales);
                let (s2, m2) = scale_min_k4(2 * c + 1, scales);
                let (d1, m1, d2, m2) = (d * s1, dmin * m1, d * s2, dmin * m2);
                let q = &qs[32 * c..32 * c + 32];
                for l in 0..32 {
                    let (mut lo, mut hi) = ((q[l] & 0xF) as f32, (q[l] >> 4) as f32);
                    if let Some(qh) = qh {
                        lo += if qh[l] & (1 << (2 * c)) != 0 {
                            16.0
                        } else {
                            0.0
                        };
                        hi += if qh[l] & (2 << (2 * c)) != 0 {
                            16.0
                        } else {
                            0.0
                        };
                    }
                    chunk[l] = d1 * lo - m1;
                    chunk[l + 32] = d2 * hi - m2;
                }
            }
        }
        GgmlType::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = h(b, 208);
            for (n, chunk) in y.chunks_mut(128).enumerate() {
                let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    chunk[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    chunk[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    chunk[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    chunk[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
            }
        }
    }
}

/// Dequantises `n` values of type `ty` from `bytes` (exactly
/// `ty.bytes_for(n)` long; the caller checks).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_into(ty, bytes, 0, &mut out);
    out
}

/// Values `start..start + out.len()` of the blocks in `bytes` into `out`:
/// whole blocks straight into place, the partial ones at either end through
/// a block-sized buffer.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], start: usize, out: &mut [f32]) {
    let (bv, bb) = ty.block();
    let (mut at, mut done) = (start, 0);
    while done < out.len() {
        let (blk, off) = (at / bv, at % bv);
        let take = (bv - off).min(out.len() - done);
        let b = &bytes[blk * bb..(blk + 1) * bb];
        if off == 0 && take == bv {
            block(ty, b, &mut out[done..done + bv]);
        } else {
            let mut buf = [0f32; 256];
            block(ty, b, &mut buf[..bv]);
            out[done..done + take].copy_from_slice(&buf[off..off + take]);
        }
        at += take;
        done += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any range of a row equals the whole row dequantised, for 32- and
    /// 256-value blocks.
    #[test]
    fn ranges_match_whole_rows() {
        for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K] {
            let (bv, bb) = ty.block();
            let mut bytes: Vec<u8> = (0..3 * bb).map(|i| (i * 37 % 251) as u8).collect();
            // Small f16 scales where the format keeps them (Q6_K: at the end).
            let scales = if ty == GgmlType::Q6K { 208..210 } else { 0..4 };
            for blk in bytes.chunks_mut(bb) {
                blk[scales.clone()].fill(0x1c);
            }
            let n = 3 * bv;
            let all = dequantize(ty, &bytes, n);
            for (start, len) in [(0, n), (5, bv + 3), (bv, bv), (bv - 1, 2), (n - 26, 26)] {
                let mut out = vec![0f32; len];
                dequantize_into(ty, &bytes, start, &mut out);
                assert_eq!(out, all[start..start + len], "{ty:?} {start}+{len}");
            }
        }
    }
}
