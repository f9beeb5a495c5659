//! Token choice: transformers' logits processors (repetition penalty,
//! minimum length, no-repeat n-grams), then greedy `argmax` or sampling with
//! temperature, top-k and top-p from the row's own seeded generator.

use rand::Rng;

use super::Seq;
use crate::decode::GenParams;

/// transformers' `RepetitionPenaltyLogitsProcessor`, `MinNewTokensLengthLogitsProcessor`
/// and `NoRepeatNGramLogitsProcessor`, in that order, on `l` (the scores
/// after `tokens`, whose first `prompt_len` are the prompt).
pub(super) fn process(
    l: &mut [f32],
    tokens: &[u32],
    prompt_len: usize,
    p: &GenParams,
    eos: &[u32],
) {
    if p.repetition_penalty != 1.0 {
        let mut seen = tokens.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            if let Some(x) = l.get_mut(t as usize) {
                *x = if *x < 0.0 {
                    *x * p.repetition_penalty
                } else {
                    *x / p.repetition_penalty
                };
            }
        }
    }
    if tokens.len() - prompt_len < p.min_new_tokens {
        for &e in eos {
            if let Some(x) = l.get_mut(e as usize) {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    let n = p.no_repeat_ngram_size;
    if n > 0 && tokens.len() + 1 >= n {
        let tail = &tokens[tokens.len() + 1 - n..];
        for w in tokens.windows(n) {
            if w[..n - 1] == *tail
                && let Some(x) = l.get_mut(w[n - 1] as usize)
            {
                *x = f32::NEG_INFINITY;
            }
        }
    }
}

/// Picks the next token of `s` from its logits (transformers' processor order).
pub(super) fn sample(logits: &[f32], s: &mut Seq, eos: &[u32]) -> u32 {
    let p = &s.params;
    let mut l = logits.to_vec();
    process(&mut l, &s.tokens, s.prompt_len, p, eos);
    if p.temperature <= 0.0 {
        return argmax(&l);
    }
    // Candidates by descending logit (stable: ties keep id order).
    let mut idx: Vec<usize> = (0..l.len()).collect();
    idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
    if p.top_k > 0 {
        idx.truncate(p.top_k);
    }
    let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    let values: Vec<f32> = idx.iter().map(|&i| l[i]).collect();
    draw(&values, &ids, s)
}

/// [`sample`] from a row's best logits only (`values`/`ids`, best first), for
/// rows without logits processors whose choice lies among them: greedy takes
/// the first, top-k sampling draws from the first `top_k`.
pub(super) fn sample_top(values: &[f32], ids: &[u32], s: &mut Seq) -> u32 {
    if s.params.temperature <= 0.0 {
        return ids[0];
    }
    let k = s.params.top_k.clamp(1, ids.len());
    draw(&values[..k], &ids[..k], s)
}

/// Draws from candidates sorted by descending logit: temperature, softmax,
/// then the smallest prefix whose mass reaches top-p.
fn draw(values: &[f32], ids: &[u32], s: &mut Seq) -> u32 {
    let p = &s.params;
    let l: Vec<f32> = values.iter().map(|x| x / p.temperature).collect();
    let mx = l[0];
    let mut probs: Vec<f64> = l.iter().map(|&x| ((x - mx) as f64).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= z);
    if p.top_p < 1.0 {
        // Keep the smallest prefix whose mass reaches top_p (at least one).
        let mut acc = 0.0;
        let keep = probs
            .iter()
            .position(|&x| {
                acc += x;
                acc >= p.top_p as f64
            })
            .map_or(probs.len(), |k| k + 1);
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = s.rng.random::<f64>() * total;
    for (k, &pr) in probs.iter().enumerate() {
        u -= pr;
        if u <= 0.0 {
            return ids[k];
        }
    }
    ids[probs.len() - 1]
}

/// `l` minus its log-sum-exp (PyTorch's `log_softmax`, in f32).
pub(super) fn log_softmax(l: &[f32]) -> Vec<f32> {
    let mx = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let lse = mx + l.iter().map(|x| (x - mx).exp()).sum::<f32>().ln();
    l.iter().map(|x| x - lse).collect()
}

/// Index of the first maximum (as `torch.argmax`).
pub(super) fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
