//! One test body per op family, run on every available backend and compared
//! with the plain CPU references by relative error.

use half::{bf16, f16};
use lakecap_kernels::cpu::attention::{attention_ref, kv_attention_ref};
use lakecap_kernels::cpu::{
    conv::{conv2d_ref, pool2d_ref},
    gemm::linear_ref,
    norm::{layer_norm_ref, rms_norm_ref},
    rope::rope_ref,
};
use lakecap_kernels::cuda::{
    FAMILIES, KERNELS, Precision, compile_family, nvrtc_available, unavailable_reason,
};
use lakecap_kernels::image::{Filter, PixelPlan, RgbImage};
use lakecap_kernels::{Activation, Backend, Cpu, Cuda, HostData, Mask, Pool, Pos, Rope, Window};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-30)).sqrt()
}

fn up<B: Backend>(be: &B, shape: &[usize], v: &[f32]) -> B::Tensor {
    be.upload(shape, HostData::F32(v)).unwrap()
}

fn check_linear<B: Backend>(be: &B, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Few rows take the streaming path, many the packed GEMM; ragged k and n hit every tail.
    for (m, k, n) in [
        (1, 7, 3),
        (6, 45, 9),
        (16, 203, 70),
        (37, 64, 96),
        (33, 203, 70),
        (130, 257, 65),
    ] {
        let (x, w, b) = (
            rand_vec(&mut rng, m * k),
            rand_vec(&mut rng, n * k),
            rand_vec(&mut rng, n),
        );
        let want = linear_ref(&x, &w, Some(&b), k, n);
        let got = be
            .linear(
                &up(be, &[m, k], &x),
                &up(be, &[n, k], &w),
                Some(&up(be, &[n], &b)),
            )
            .unwrap();
        assert_eq!(be.shape(&got), &[m, n]);
        let e = rel_err(&be.download(&got).unwrap(), &want);
        assert!(e < tol, "linear {m}x{k}x{n}: rel err {e}");
        // Half-precision weights (as checkpoints store them): compare with
        // the reference on the rounded weights.
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let wb16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        for (name, wr, data) in [
            (
                "f16",
                w16.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                HostData::F16(&w16),
            ),
            (
                "bf16",
                wb16.iter().map(|v| v.to_f32()).collect(),
                HostData::BF16(&wb16),
            ),
        ] {
            let want = linear_ref(&x, &wr, None, k, n);
            let got = be
                .linear(
                    &up(be, &[m, k], &x),
                    &be.upload(&[n, k], data).unwrap(),
                    None,
                )
                .unwrap();
            let got = be.download(&got).unwrap();
            let e = rel_err(&got, &want);
            // A bf16 weight may run a bf16 GEMM (AMX tiles, tensor cores):
            // then the reference rounds x to bf16 too.
            let e = match name {
                "bf16" => {
                    let xr: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
                    e.min(rel_err(&got, &linear_ref(&xr, &wr, None, k, n)))
                }
                _ => e,
            };
            assert!(e < tol, "linear {name} weights {m}x{k}x{n}: rel err {e}");
        }
    }
}

fn check_norm_and_pointwise<B: Backend>(be: &B, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (rows, d) = (33, 384);
    let x: Vec<f32> = rand_vec(&mut rng, rows * d)
        .iter()
        .map(|v| v * 4.0 + 1.5)
        .collect();
    let (g, b) = (rand_vec(&mut rng, d), rand_vec(&mut rng, d));
    let want = layer_norm_ref(&x, d, &g, &b, 1e-5);
    let got = be
        .layer_norm(
            &up(be, &[rows, d], &x),
            &up(be, &[d], &g),
            &up(be, &[d], &b),
            1e-5,
        )
        .unwrap();
    let e = rel_err(&be.download(&got).unwrap(), &want);
    assert!(e < tol, "layer_norm rel err {e}");

    for act in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::QuickGelu,
        Activation::Silu,
    ] {
        let got = be
            .download(&be.activation(&up(be, &[rows, d], &x), act).unwrap())
            .unwrap();
        let want: Vec<f32> = x
            .iter()
            .map(|&v| lakecap_kernels::cpu::activation::apply(act, v))
            .collect();
        assert!(rel_err(&got, &want) < tol, "{act:?}");
    }

    // Broadcast add of a suffix shape, bf16 storage.
    let bias16: Vec<bf16> = g.iter().map(|&v| bf16::from_f32(v)).collect();
    let sum = be
        .add(
            &up(be, &[rows, d], &x),
            &be.upload(&[d], HostData::BF16(&bias16)).unwrap(),
        )
        .unwrap();
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v + bias16[i % d].to_f32())
        .collect();
    assert!(rel_err(&be.download(&sum).unwrap(), &want) < tol);
    assert!(
        be.add(
            &up(be, &[rows, d], &x),
            &up(be, &[d + 1], &rand_vec(&mut rng, d + 1))
        )
        .is_err()
    );

    let n = be
        .download(&be.l2_normalize(&up(be, &[rows, d], &x)).unwrap())
        .unwrap();
    for row in n.chunks(d) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

fn check_attention<B: Backend>(be: &B, tol: f32) {
    // Short sequences take the per-row path, long ones the per-head GEMMs;
    // head sizes cover the CPU's vector paths (multiples of 8, one and more
    // than 64 wide) and its scalar one. On CUDA, 16+ queries of width 32 or
    // 64 take the flash kernel: several key tiles, a partial last tile and
    // a partial query block.
    for (sq, sk, d) in [
        (9, 9, 16),
        (9, 13, 72),
        (5, 9, 12),
        (70, 70, 16),
        (40, 75, 16),
        (70, 150, 64),
        (130, 130, 32),
    ] {
        check_attention_shape(be, tol, sq, sk, d);
    }
}

fn check_attention_shape<B: Backend>(be: &B, tol: f32, sq: usize, sk: usize, d: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, heads) = (3, 4);
    let hd = heads * d;
    let q = rand_vec(&mut rng, b * sq * hd);
    let k = rand_vec(&mut rng, b * sk * hd);
    let v = rand_vec(&mut rng, b * sk * hd);
    for mask in [
        Mask::default(),
        Mask {
            causal: true,
            key_lens: None,
        },
        Mask {
            causal: false,
            key_lens: Some(vec![sk, 4, 1]),
        },
        Mask {
            causal: true,
            key_lens: Some(vec![2, sk, 5]),
        },
    ] {
        let want = attention_ref(&q, &k, &v, b, sq, sk, heads, d, &mask);
        let got = be
            .attention(
                &up(be, &[b, sq, hd], &q),
                &up(be, &[b, sk, hd], &k),
                &up(be, &[b, sk, hd], &v),
                heads,
                &mask,
            )
            .unwrap();
        let e = rel_err(&be.download(&got).unwrap(), &want);
        assert!(e < tol, "attention {mask:?}: rel err {e}");
    }
    // Cross-attention: fewer queries than keys, here one a sequence (a
    // pooled encoder's last layer), under each sequence's key length.
    let mask = Mask {
        causal: false,
        key_lens: Some(vec![sk, 4, 1]),
    };
    let q1 = &q[..b * hd];
    let want = attention_ref(q1, &k, &v, b, 1, sk, heads, d, &mask);
    let got = be
        .attention(
            &up(be, &[b, 1, hd], q1),
            &up(be, &[b, sk, hd], &k),
            &up(be, &[b, sk, hd], &v),
            heads,
            &mask,
        )
        .unwrap();
    assert!(rel_err(&be.download(&got).unwrap(), &want) < tol);
}

fn check_gather_and_pool<B: Backend>(be: &B) {
    let table: Vec<f32> = (0..20).map(|v| v as f32).collect();
    let t = up(be, &[5, 4], &table);
    let e = be.download(&be.embedding(&t, &[4, 0, 4]).unwrap()).unwrap();
    assert_eq!(e, [16., 17., 18., 19., 0., 1., 2., 3., 16., 17., 18., 19.]);
    assert!(
        be.embedding(&t, &[5]).is_err(),
        "out-of-range ids are errors"
    );
    // A half-precision table (a bf16 checkpoint's embeddings) gives the same rows.
    let half: Vec<bf16> = table.iter().map(|&v| bf16::from_f32(v)).collect();
    let th = be.upload(&[5, 4], HostData::BF16(&half)).unwrap();
    let e = be.download(&be.embedding(&th, &[4, 0]).unwrap()).unwrap();
    assert_eq!(e, [16., 17., 18., 19., 0., 1., 2., 3.]);

    let x = up(be, &[2, 2, 4], &table[..16]);
    let cls = up(be, &[4], &[-1., -2., -3., -4.]);
    let p = be.prepend_row(&x, &cls).unwrap();
    assert_eq!(be.shape(&p), &[2, 3, 4]);
    assert_eq!(&be.download(&p).unwrap()[12..16], &[-1., -2., -3., -4.]);
    let g = be.download(&be.gather_rows(&p, &[5, 0]).unwrap()).unwrap();
    assert_eq!(g, [12., 13., 14., 15., -1., -2., -3., -4.]);
    let m = be.download(&be.masked_mean(&x, &[1, 2]).unwrap()).unwrap();
    assert_eq!(m, [0., 1., 2., 3., 10., 11., 12., 13.]);
}

/// RMSNorm, element-wise product and RoPE against their references.
fn check_decoder_pointwise<B: Backend>(be: &B, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (rows, heads, d) = (5, 3, 8);
    let x = rand_vec(&mut rng, rows * heads * d);
    let g = rand_vec(&mut rng, heads * d);
    let xt = up(be, &[rows, heads * d], &x);
    let got = be.rms_norm(&xt, &up(be, &[heads * d], &g), 1e-6).unwrap();
    let want = rms_norm_ref(&x, heads * d, &g, 1e-6);
    assert!(rel_err(&be.download(&got).unwrap(), &want) < tol);

    // SwiGLU's fused SiLU·mul, and the other activations through it.
    let u: Vec<f32> = x.iter().map(|v| 0.5 - v).collect();
    for act in [Activation::Silu, Activation::Gelu, Activation::QuickGelu] {
        let m = be
            .act_mul(&xt, &up(be, &[rows, heads * d], &u), act)
            .unwrap();
        let want: Vec<f32> = x
            .iter()
            .zip(&u)
            .map(|(&v, w)| lakecap_kernels::cpu::activation::apply(act, v) * w)
            .collect();
        assert!(
            rel_err(&be.download(&m).unwrap(), &want) < tol,
            "{act:?}·mul"
        );
    }
    assert!(
        be.act_mul(&xt, &up(be, &[heads * d], &g), Activation::Silu)
            .is_err()
    );

    let inv_freq: Vec<f32> = (0..d / 2)
        .map(|i| 1.0 / 10_000f32.powf(2.0 * i as f32 / d as f32))
        .collect();
    let positions = [0, 1, 7, 300, 4095];
    for scale in [1.0, 1.25] {
        let r = Rope {
            inv_freq: &inv_freq,
            scale,
        };
        let got = be.rope(&xt, heads, &positions, r).unwrap();
        let want = rope_ref(&x, d, &positions, r);
        let e = rel_err(&be.download(&got).unwrap(), &want);
        assert!(e < tol * 10.0, "rope scale {scale}: rel err {e}");
    }
    let r = Rope {
        inv_freq: &inv_freq,
        scale: 1.0,
    };
    assert!(be.rope(&xt, heads, &positions[..2], r).is_err());
    assert!(be.rope(&xt, 2, &positions, r).is_err());
}

/// KV cache: a prefill of one sequence mixed with decode rows of others in
/// one call, grouped-query heads, slot reuse, and the range errors.
fn check_kv_cache<B: Backend>(be: &B, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (heads, kv_heads, d, slots, cap) = (6, 2, 16, 3, 40);
    let width = kv_heads * d;
    let mut cache = be.kv_cache(slots, cap, width).unwrap();
    // Host mirror of what the cache should hold.
    let mut keys = vec![Vec::new(); slots];
    let mut values = vec![Vec::new(); slots];
    let mut store = |be: &B,
                     cache: &mut B::KvCache,
                     at: &[Pos],
                     keys: &mut Vec<Vec<f32>>,
                     values: &mut Vec<Vec<f32>>| {
        let k = rand_vec(&mut rng, at.len() * width);
        let v = rand_vec(&mut rng, at.len() * width);
        be.kv_store(
            cache,
            &up(be, &[at.len(), width], &k),
            &up(be, &[at.len(), width], &v),
            at,
        )
        .unwrap();
        for (i, p) in at.iter().enumerate() {
            for (m, src) in [(&mut keys[p.slot], &k), (&mut values[p.slot], &v)] {
                m.resize(m.len().max((p.pos + 1) * width), 0.0);
                m[p.pos * width..(p.pos + 1) * width]
                    .copy_from_slice(&src[i * width..(i + 1) * width]);
            }
        }
    };
    // Step 1: prefill slot 0 (7 tokens) and slot 2 (3 tokens) together.
    let mut at: Vec<Pos> = (0..7).map(|pos| Pos { slot: 0, pos }).collect();
    at.extend((0..3).map(|pos| Pos { slot: 2, pos }));
    store(be, &mut cache, &at, &mut keys, &mut values);
    let check = |be: &B,
                 cache: &B::KvCache,
                 at: &[Pos],
                 keys: &[Vec<f32>],
                 values: &[Vec<f32>],
                 rng: &mut ChaCha8Rng| {
        let q = rand_vec(rng, at.len() * heads * d);
        let got = be
            .kv_attention(&up(be, &[at.len(), heads * d], &q), cache, at, heads)
            .unwrap();
        let want = kv_attention_ref(&q, keys, values, width, at, heads);
        let e = rel_err(&be.download(&got).unwrap(), &want);
        assert!(e < tol, "kv attention: rel err {e}");
    };
    let mut rng2 = ChaCha8Rng::seed_from_u64(9);
    check(be, &cache, &at, &keys, &values, &mut rng2);
    // Step 2: decode rows for slots 0 and 2 beside a new prefill in slot 1.
    let mut at = vec![Pos { slot: 0, pos: 7 }, Pos { slot: 2, pos: 3 }];
    at.extend((0..5).map(|pos| Pos { slot: 1, pos }));
    store(be, &mut cache, &at, &mut keys, &mut values);
    check(be, &cache, &at, &keys, &values, &mut rng2);
    // Step 3: slot 0 starts a new, shorter sequence.
    let at: Vec<Pos> = (0..2).map(|pos| Pos { slot: 0, pos }).collect();
    store(be, &mut cache, &at, &mut keys, &mut values);
    check(be, &cache, &at, &keys, &values, &mut rng2);

    // Beam reordering: slots 0 and 2 swap their first 2 positions; slot 1 copies slot 2's.
    be.kv_copy(&mut cache, &[(0, 2), (2, 0), (2, 1)], 2)
        .unwrap();
    let (k0, v0) = (
        keys[0][..2 * width].to_vec(),
        values[0][..2 * width].to_vec(),
    );
    let (k2, v2) = (
        keys[2][..2 * width].to_vec(),
        values[2][..2 * width].to_vec(),
    );
    for (slot, (k, v)) in [(2, (&k0, &v0)), (0, (&k2, &v2)), (1, (&k2, &v2))] {
        keys[slot][..2 * width].copy_from_slice(k);
        values[slot][..2 * width].copy_from_slice(v);
    }
    let at: Vec<Pos> = (0..3).map(|slot| Pos { slot, pos: 1 }).collect();
    check(be, &cache, &at, &keys, &values, &mut rng2);
    assert!(be.kv_copy(&mut cache, &[(0, 3)], 1).is_err());

    let q = up(be, &[1, heads * d], &vec![0.0; heads * d]);
    let beyond = [Pos { slot: 0, pos: cap }];
    assert!(be.kv_attention(&q, &cache, &beyond, heads).is_err());
    assert!(
        be.kv_attention(&q, &cache, &[Pos { slot: 1, pos: 30 }], heads)
            .is_err(),
        "unwritten rows"
    );
    assert!(
        be.kv_attention(&q, &cache, &[Pos { slot: 3, pos: 0 }], heads)
            .is_err()
    );
    assert!(
        be.kv_attention(&q, &cache, &[Pos { slot: 0, pos: 0 }], 5)
            .is_err(),
        "heads must group"
    );
}

/// Top-k against a full stable sort (larger first, ties by index, NaN last).
fn check_top_k<B: Backend>(be: &B) {
    let row = [1.0, 3.0, f32::NAN, 3.0, f32::NEG_INFINITY, -2.0, 0.0, -0.0];
    let (v, i) = be.top_k(&up(be, &[1, 8], &row), 8).unwrap();
    assert_eq!(i, vec![1, 3, 0, 6, 7, 5, 4, 2]);
    assert_eq!(&v[..6], &[3.0, 3.0, 1.0, 0.0, 0.0, -2.0]);
    assert!(v[7].is_nan());
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (rows, n) = (7, 1000);
    // Coarse values so that ties are common.
    let x: Vec<f32> = (0..rows * n)
        .map(|_| (rng.random_range(0..40) as f32) * 0.25)
        .collect();
    for k in [1, 5, 50] {
        let (v, i) = be.top_k(&up(be, &[rows, n], &x), k).unwrap();
        for r in 0..rows {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| x[r * n + b].total_cmp(&x[r * n + a]));
            let want: Vec<u32> = order[..k].iter().map(|&j| j as u32).collect();
            assert_eq!(&i[r * k..(r + 1) * k], &want[..], "row {r}, k {k}");
            let vals: Vec<f32> = want.iter().map(|&j| x[r * n + j as usize]).collect();
            assert_eq!(&v[r * k..(r + 1) * k], &vals[..]);
        }
    }
    assert!(be.top_k(&up(be, &[2, 3], &[0.0; 6]), 4).is_err(), "k > n");
    assert!(be.top_k(&up(be, &[2, 3], &[0.0; 6]), 0).is_err(), "k = 0");
}

/// Image preprocessing equals the host plan bit for bit: down- and
/// upscaling, one axis only, no resize, a crop that pads, two filters.
fn check_pixel_patches<B: Backend>(be: &B) {
    let img = |w: usize, h: usize, seed: usize| -> Vec<u8> {
        (0..w * h * 3)
            .map(|i| ((i * 31 + seed * 17) % 256) as u8)
            .collect()
    };
    let cases = [
        (97, 61, (32, 51)),
        (20, 13, (32, 49)),
        (40, 32, (32, 36)),
        (32, 45, (32, 32)),
        (32, 32, (32, 32)),
        (24, 20, (20, 24)),
    ];
    let pixels: Vec<Vec<u8>> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| img(c.0, c.1, i))
        .collect();
    let images: Vec<RgbImage> = cases
        .iter()
        .zip(&pixels)
        .map(|(&(width, height, resize), px)| RgbImage {
            px,
            width,
            height,
            resize,
        })
        .collect();
    for filter in [Filter::Bicubic, Filter::Bilinear] {
        let plan = PixelPlan {
            filter,
            crop: (32, 32),
            scale: 1.0 / 255.0,
            mean: [0.48, 0.46, 0.41],
            std: [0.27, 0.26, 0.28],
            patch: 8,
        };
        let got = be.pixel_patches(&images, &plan).unwrap();
        assert_eq!(be.shape(&got), &[images.len(), 16, 192]);
        let want: Vec<f32> = images.iter().flat_map(|i| plan.patches(i)).collect();
        assert_eq!(be.download(&got).unwrap(), want, "{filter:?}");
        let short = RgbImage {
            px: &pixels[0][..10],
            ..images[0]
        };
        assert!(be.pixel_patches(&[short], &plan).is_err());
    }
}

/// Block-quantised weights (as GGUF stores them): a linear layer over them
/// equals the reference over the dequantised weights, on the streaming path
/// (up to 64 rows for these) and the packed one.
/// x as `be` multiplies it by GGML weights of type `ty`: where it rounds x
/// for Q4_0/Q4_1/Q8_0 blocks, each 32 values to `d · q` with d = max|x| /
/// 127 at f16 precision and q = x / d rounded half to even (ggml's AVX
/// `quantize_row_q8_0`); for Q4_K/Q5_K/Q6_K each 256 values with an f32 d
/// (ggml's `quantize_row_q8_K`).
fn blocks_x<B: Backend>(be: &B, ty: lakecap_kernels::quant::GgmlType, x: &[f32]) -> Vec<f32> {
    use lakecap_kernels::quant::GgmlType;
    let span = match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => 32,
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 256,
        _ => return x.to_vec(),
    };
    if !be.rounds_x_for_blocks() {
        return x.to_vec();
    }
    x.chunks(span)
        .flat_map(|b| {
            let d = b.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let d = if span == 32 {
                f16::from_f32(d).to_f32()
            } else {
                d
            };
            b.iter().map(move |v| d * (v * id).round_ties_even())
        })
        .collect()
}

fn check_quant_linear<B: Backend>(be: &B, tol: f32) {
    use lakecap_kernels::quant::{GgmlType, dequantize};
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let (bv, bb) = ty.block();
        // 2304 values: 72 blocks of 32, 9 of 256.
        let shapes = [
            (1, 2 * bv, 5),
            (6, 3 * bv, 7),
            (2, 2304, 3),
            (40, bv, 33),
            (90, 3 * bv, 17),
            // Whole groups of 8 rows: interleaved Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K on VNNI CPUs
            // (cpu::packed), over two tasks of rows at 72.
            (1, 3 * bv, 16),
            (13, 2 * bv, 72),
            // Past the CPU's integer tiles (gemm::TILES_M): widened weights.
            (530, bv, 9),
            (530, bv, 16),
        ];
        for (m, k, n) in shapes {
            // Random blocks with small f16 scales in their scale fields.
            let mut bytes: Vec<u8> = (0..n * k / bv * bb).map(|_| rng.random()).collect();
            for blk in bytes.chunks_mut(bb) {
                match ty {
                    // Q6_K's d comes last (its i8 scales are random).
                    GgmlType::Q6K => {
                        blk[208..].copy_from_slice(&f16::from_f32(0.001).to_le_bytes())
                    }
                    _ => blk[0..2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes()),
                }
                if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q6K) {
                    blk[2..4].copy_from_slice(&f16::from_f32(0.02).to_le_bytes());
                }
            }
            let w = dequantize(ty, &bytes, n * k);
            let mut x = rand_vec(&mut rng, m * k);
            // A block of zeros (its scale is 0).
            x[..32].fill(0.0);
            let want = linear_ref(&blocks_x(be, ty, &x), &w, None, k, n);
            let data = HostData::Quant {
                ty,
                bytes: &bytes,
                len: n * k,
            };
            let got = be
                .linear(
                    &up(be, &[m, k], &x),
                    &be.upload_weight(&[n, k], data).unwrap(),
                    None,
                )
                .unwrap();
            let e = rel_err(&be.download(&got).unwrap(), &want);
            assert!(e < tol, "{ty:?} linear {m}x{k}x{n}: rel err {e}");
            // Bytes that are not whole blocks of the values are refused.
            let short = HostData::Quant {
                ty,
                bytes: &bytes[1..],
                len: n * k,
            };
            assert!(be.upload_weight(&[n, k], short).is_err());
        }
    }
}

/// `linear_many`: one input by several weights of different storage (f32
/// with a bias, GGML Q4_1 with a bias, f16 without), each output equal to
/// its own reference, for decoding-sized inputs (one pass on the CPU) and
/// larger ones (one by one).
fn check_linear_many<B: Backend>(be: &B, tol: f32) {
    use lakecap_kernels::quant::{GgmlType, dequantize};
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let k = 96;
    let (n0, n1, n2) = (70, 33, 129);
    let w0 = rand_vec(&mut rng, n0 * k);
    let b0 = rand_vec(&mut rng, n0);
    let mut q: Vec<u8> = (0..n1 * k / 32 * 20).map(|_| rng.random()).collect();
    for blk in q.chunks_mut(20) {
        blk[0..4].copy_from_slice(&[0x1c, 0x1c, 0x1c, 0x9c]);
    }
    let w1 = dequantize(GgmlType::Q4_1, &q, n1 * k);
    let b1 = rand_vec(&mut rng, n1);
    let w2: Vec<f16> = rand_vec(&mut rng, n2 * k)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let w2r: Vec<f32> = w2.iter().map(|v| v.to_f32()).collect();
    let ws = [
        be.upload_weight(&[n0, k], HostData::F32(&w0)).unwrap(),
        be.upload_weight(
            &[n1, k],
            HostData::Quant {
                ty: GgmlType::Q4_1,
                bytes: &q,
                len: n1 * k,
            },
        )
        .unwrap(),
        be.upload_weight(&[n2, k], HostData::F16(&w2)).unwrap(),
    ];
    let (bt0, bt1) = (up(be, &[n0], &b0), up(be, &[n1], &b1));
    for m in [1, 3, 16, 40, 90] {
        let x = rand_vec(&mut rng, m * k);
        let got = be
            .linear_many(
                &up(be, &[m, k], &x),
                &[(&ws[0], Some(&bt0)), (&ws[1], Some(&bt1)), (&ws[2], None)],
            )
            .unwrap();
        assert_eq!(got.len(), 3);
        let want = [
            linear_ref(&x, &w0, Some(&b0), k, n0),
            linear_ref(&blocks_x(be, GgmlType::Q4_1, &x), &w1, Some(&b1), k, n1),
            linear_ref(&x, &w2r, None, k, n2),
        ];
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(be.shape(g), &[m, w.len() / m]);
            let e = rel_err(&be.download(g).unwrap(), w);
            assert!(e < tol, "linear_many output {i}, {m} rows: rel err {e}");
        }
    }
}

/// Convolutions (through im2col or pointwise) and pooling against direct
/// loops, over odd sizes, steps and asymmetric padding.
fn check_conv_and_pool<B: Backend>(be: &B, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let dims = [2, 9, 7, 5];
    let x = rand_vec(&mut rng, dims.iter().product());
    let xt = up(be, &dims, &x);
    let windows = [
        ((3, 3), (1, 1), [1, 1, 1, 1]),
        ((7, 7), (2, 2), [3, 3, 3, 3]),
        ((1, 1), (2, 2), [0, 0, 0, 0]),
        ((1, 1), (1, 1), [0, 0, 0, 0]),
        ((3, 2), (2, 1), [0, 1, 2, 0]),
    ];
    for (kernel, stride, pad) in windows {
        let win = Window {
            kernel,
            stride,
            pad,
        };
        let o = 6;
        let (w, b) = (
            rand_vec(&mut rng, o * kernel.0 * kernel.1 * dims[3]),
            rand_vec(&mut rng, o),
        );
        let want = conv2d_ref(&x, dims, &w, Some(&b), o, &win);
        let wt = up(be, &[o, w.len() / o], &w);
        let bt = up(be, &[o], &b);
        let got = be.conv2d(&xt, &wt, Some(&bt), &win, None, None).unwrap();
        let (oh, ow) = win.out_size(dims[1], dims[2]).unwrap();
        assert_eq!(be.shape(&got), &[2, oh, ow, o], "{win:?}");
        let e = rel_err(&be.download(&got).unwrap(), &want);
        assert!(e < tol, "conv2d {win:?}: rel err {e}");
        // A residual block's tail: + residual, then ReLU.
        let res = rand_vec(&mut rng, want.len());
        let rt = up(be, &[2, oh, ow, o], &res);
        let fused = be
            .conv2d(&xt, &wt, Some(&bt), &win, Some(&rt), Some(Activation::Relu))
            .unwrap();
        let want: Vec<f32> = want
            .iter()
            .zip(&res)
            .map(|(a, r)| (a + r).max(0.0))
            .collect();
        let e = rel_err(&be.download(&fused).unwrap(), &want);
        assert!(e < tol, "conv2d {win:?} + residual, ReLU: rel err {e}");
        assert!(be.conv2d(&xt, &wt, None, &win, Some(&xt), None).is_err());
        for pool in [Pool::Max, Pool::Avg] {
            let want = pool2d_ref(&x, dims, &win, pool);
            let got = be.download(&be.pool2d(&xt, &win, pool).unwrap()).unwrap();
            let e = rel_err(&got, &want);
            assert!(e < tol, "{pool:?} pool {win:?}: rel err {e}");
        }
    }
    // A window larger than the padded image, and weights of the wrong width.
    let big = Window {
        kernel: (11, 3),
        stride: (1, 1),
        pad: [0; 4],
    };
    assert!(be.pool2d(&xt, &big, Pool::Max).is_err());
    let win = Window {
        kernel: (3, 3),
        stride: (1, 1),
        pad: [1; 4],
    };
    assert!(
        be.conv2d(&xt, &up(be, &[4, 9], &[0.0; 36]), None, &win, None, None)
            .is_err()
    );
}

fn run_all<B: Backend>(be: &B, tol: f32) {
    check_conv_and_pool(be, tol);
    check_quant_linear(be, tol);
    check_top_k(be);
    check_pixel_patches(be);
    check_linear(be, tol);
    check_linear_many(be, tol);
    check_norm_and_pointwise(be, tol);
    check_attention(be, tol);
    check_gather_and_pool(be);
    check_decoder_pointwise(be, tol);
    check_kv_cache(be, tol);
}

/// Every path lakecap's CPU kernels have on this machine: AMX and AVX-512,
/// AVX2/FMA, then the portable code; then exact f32 products.
#[test]
fn cpu_backend_matches_references() {
    use lakecap_kernels::cpu::{Simd, limit_simd, simd_paths};
    for level in [Simd::Best, Simd::Avx2, Simd::Portable] {
        limit_simd(level);
        eprintln!("cpu paths ({level:?}): {}", simd_paths());
        run_all(&Cpu, 1e-5);
    }
    limit_simd(Simd::Best);
    // `lakecap.precision = 'f32'`: f32 x in every product.
    run_all(
        &Cpu {
            precision: Precision::F32,
        },
        1e-5,
    );
}

#[test]
fn cuda_backend_matches_references() {
    if let Some(why) = unavailable_reason() {
        eprintln!("skipping the CUDA backend test: {why}");
        return;
    }
    let be = Cuda::new(0, Precision::F32).expect("CUDA backend");
    eprintln!("running on {}", be.name());
    run_all(&be, 1e-4);
}

/// Half-precision weights: f32 checkpoints converted at load by
/// `upload_weight`, GEMMs with f32 accumulation, embedding rows read from
/// half tables. Bounded by the 16-bit rounding of weights and activations.
fn check_half_precision<B: Backend>(be: &B, precision: Precision, tol: f32) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (m, k, n) in [(1, 7, 3), (64, 768, 3072), (130, 257, 65)] {
        let (x, w, b) = (
            rand_vec(&mut rng, m * k),
            rand_vec(&mut rng, n * k),
            rand_vec(&mut rng, n),
        );
        let want = linear_ref(&x, &w, Some(&b), k, n);
        let wt = be.upload_weight(&[n, k], HostData::F32(&w)).unwrap();
        let bt = be.upload_weight(&[n], HostData::F32(&b)).unwrap();
        let got = be.linear(&up(be, &[m, k], &x), &wt, Some(&bt)).unwrap();
        let e = rel_err(&be.download(&got).unwrap(), &want);
        eprintln!("{precision:?} linear {m}x{k}x{n}: rel err {e:.2e}");
        assert!(e < tol, "{precision:?} linear {m}x{k}x{n}: rel err {e}");
        // The weight really is kept in half precision: its values are rounded.
        let e = rel_err(&be.download(&wt).unwrap(), &w);
        assert!(
            e > 1e-6 && e < tol,
            "{precision:?} weight kept: rel err {e}"
        );
    }
    let table = rand_vec(&mut rng, 50 * 16);
    let t = be.upload_weight(&[50, 16], HostData::F32(&table)).unwrap();
    let got = be
        .download(&be.embedding(&t, &[3, 49, 0]).unwrap())
        .unwrap();
    let want: Vec<f32> = [3usize, 49, 0]
        .iter()
        .flat_map(|&r| table[r * 16..(r + 1) * 16].to_vec())
        .collect();
    let e = rel_err(&got, &want);
    assert!(e < tol, "{precision:?} embedding rows: rel err {e}");
    // The whole table back (widened) for ops that read f32.
    let e = rel_err(&be.download(&t).unwrap(), &table);
    assert!(e < tol, "{precision:?} widen: rel err {e}");
}

/// `lakecap.precision = 'bf16'` on the CPU: weight matrices kept in bf16,
/// GEMMs on AMX tiles or AVX512-BF16 where the CPU has them, else widened
/// (every path this machine has).
#[test]
fn cpu_bf16_precision_matches_references() {
    use lakecap_kernels::cpu::{Simd, limit_simd, simd_paths};
    let be = Cpu {
        precision: Precision::Bf16,
    };
    for level in [Simd::Best, Simd::Avx2] {
        limit_simd(level);
        eprintln!("cpu paths ({level:?}): {}", simd_paths());
        check_half_precision(&be, Precision::Bf16, 1.5e-2);
    }
    limit_simd(Simd::Best);
}

/// Half-precision weights on CUDA, f16 and bf16.
#[test]
fn cuda_half_precision_matches_references() {
    if let Some(why) = unavailable_reason() {
        eprintln!("skipping the CUDA half-precision test: {why}");
        return;
    }
    for (precision, tol) in [(Precision::F16, 2e-3), (Precision::Bf16, 1.5e-2)] {
        let be = Cuda::new(0, precision).expect("CUDA backend");
        check_half_precision(&be, precision, tol);
    }
}

/// Every `.cu` family compiles to PTX; needs only NVRTC (CI installs it from
/// PyPI and sets LAKECAP_REQUIRE_NVRTC=1 so that a missing library fails).
#[test]
fn cuda_kernels_compile_to_ptx() {
    if !nvrtc_available() {
        assert!(
            std::env::var("LAKECAP_REQUIRE_NVRTC").is_err(),
            "NVRTC required but not found"
        );
        eprintln!("skipping: no NVRTC library (install nvidia-cuda-nvrtc-cu12, see .ci/run)");
        return;
    }
    for arch in ["compute_75", "compute_80", "compute_90"] {
        let mut entries = String::new();
        for (family, src) in FAMILIES {
            let ptx =
                compile_family(src, arch).unwrap_or_else(|e| panic!("{family}.cu for {arch}: {e}"));
            assert!(ptx.contains(".entry"), "{family}.cu produced no kernels");
            entries.push_str(&ptx);
        }
        // Every kernel the backend launches exists, under its exact name.
        for k in KERNELS {
            assert!(
                entries.contains(&format!(".entry {k}(")),
                "no kernel {k} for {arch}"
            );
        }
    }
    let err = compile_family(
        "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }",
        "compute_80",
    )
    .unwrap_err();
    assert!(err.contains("undefined_name"), "{err}");
}
