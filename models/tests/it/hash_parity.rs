//! phash/dhash against Python imagehash 4.3.2 (fixtures from tests/fixtures/gen_hash_fixtures.py).

use lakecap_models::image::{DecodeLimits, decode, dhash, hamming, phash};

/// Files whose decoded pixels differ from Pillow's, with the largest hash distance allowed.
/// `blocky_rgb.jpg` is 4:2:0 JPEG of pure colour noise: the `image` crate's JPEG decoder
/// upsamples chroma differently from libjpeg-turbo's "fancy" upsampling (28% of samples
/// differ by up to 13). Smooth photographs are unaffected: every real JPEG matches exactly.
const KNOWN_DECODER_DIFFERENCES: &[(&str, u32)] = &[("tests/fixtures/hash/blocky_rgb.jpg", 6)];

fn parse(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn phash_and_dhash_match_imagehash_bit_for_bit() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let expected =
        std::fs::read_to_string(format!("{root}/tests/fixtures/hash/expected.tsv")).unwrap();
    let mut exact = 0;
    let mut failures = Vec::new();
    for line in expected.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, mode, want_p, want_d) = (cols[0], cols[1], parse(cols[2]), parse(cols[3]));
        let bytes = std::fs::read(format!("{root}/{file}")).unwrap();
        let img = decode(&bytes, DecodeLimits::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (p, d) = (phash(&img), dhash(&img));
        let allowed = KNOWN_DECODER_DIFFERENCES
            .iter()
            .find(|(f, _)| *f == file)
            .map_or(0, |&(_, bits)| bits);
        if hamming(p, want_p) > allowed || hamming(d, want_d) > allowed {
            failures.push(format!("{file} ({mode}): phash {p:016x} want {want_p:016x}, dhash {d:016x} want {want_d:016x}"));
        }
        if p == want_p && d == want_d {
            exact += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        exact, 25,
        "all fixtures but the known decoder difference are bit-identical"
    );
}
