//! SemDeDup on CUDA gives the CPU's verdicts (same clusters, same kept rows,
//! same duplicate pairs); skipped without a GPU. Part of scripts/gpu-check.sh.

use lakecap_kernels::cuda::{Precision, unavailable_reason};
use lakecap_models::runtime::Device;
use lakecap_models::semdedup::{SemDedupParams, semantic_duplicates, semantic_duplicates_on};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn semdedup_on_cuda_matches_cpu() {
    if let Some(why) = unavailable_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    // 40 well-separated directions, 50 noisy copies each, 5% exact duplicates.
    let (d, mut rng) = (64, ChaCha8Rng::seed_from_u64(5));
    let centers: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut v = Vec::new();
    for i in 0..2000 {
        if i % 20 == 19 {
            // A copy of an original (not of a copy), so each has one source.
            let j = rng.random_range(0..i);
            let j = if j % 20 == 19 { j - 1 } else { j };
            v.extend_from_within(j * d..(j + 1) * d);
        } else {
            v.extend(
                centers[i % 40]
                    .iter()
                    .map(|x| x + rng.random_range(-0.3f32..0.3)),
            );
        }
    }
    let p = SemDedupParams {
        threshold: 0.999,
        clusters: Some(40),
        ..Default::default()
    };
    let cpu = semantic_duplicates(&v, d, &p).unwrap();
    let gpu = semantic_duplicates_on(Device::Cuda(0, Precision::F32), &v, d, &p).unwrap();
    let dups = |r: &[lakecap_models::semdedup::SemDup]| -> Vec<Option<usize>> {
        r.iter().map(|x| x.dup_of).collect()
    };
    assert_eq!(dups(&gpu), dups(&cpu));
    assert!(cpu.iter().filter(|x| x.dup_of.is_some()).count() >= 90);
}
