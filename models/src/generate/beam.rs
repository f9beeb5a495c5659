//! Beam search with the semantics of transformers' `_beam_search`
//! (transformers 5, `generation/utils.py`): per step, log-softmax, the logits
//! processors, running beam scores added, the top `2·k` continuations over
//! all beams; those ending (EOS, or the length limit) among the top `k` join
//! the finished hypotheses scored `sum log-p / generated_len ^ length_penalty`
//! (the best `k` kept); the top `k` that do not end continue. The search stops
//! at the length limit, when `early_stopping` and `k` hypotheses are done, or
//! when no running beam can beat the worst finished one (transformers'
//! heuristic for `early_stopping = False`).

use super::sampling::{log_softmax, process};
use crate::decode::GenParams;

/// A beam group's search state; beam `j` lives in `slots[j]`.
pub(super) struct Group {
    pub slots: Vec<usize>,
    /// Running beam scores (sums of log-probabilities).
    pub scores: Vec<f32>,
    /// Finished hypotheses `(score, full sequence)`, best first, at most `k`.
    pub finished: Vec<(f32, Vec<u32>)>,
    /// transformers' `is_early_stop_heuristic_unsatisfied`.
    pub open: bool,
    pub prompt_len: usize,
    /// Prompt plus the most new tokens (and within the context).
    pub max_len: usize,
    /// Not a beam search: a guided row's conditional and unconditional
    /// branches (members 0 and 1), which decode the same tokens.
    pub guided: bool,
}

/// What one step decided.
pub(super) struct Advance {
    /// For beam `j`: the beam it continues and its new token.
    pub next: Vec<(usize, u32)>,
    /// The search is over.
    pub done: bool,
}

const NEG: f32 = -1.0e9;

impl Group {
    pub fn new(slots: Vec<usize>, prompt_len: usize, max_len: usize) -> Group {
        let k = slots.len();
        // Only beam 0 is live at first: the others are copies of it.
        let scores = (0..k).map(|j| if j == 0 { 0.0 } else { NEG }).collect();
        Group {
            slots,
            scores,
            finished: Vec::new(),
            open: true,
            prompt_len,
            max_len,
            guided: false,
        }
    }

    /// One step from each beam's logits; `seqs[j]` is beam `j`'s sequence.
    pub fn advance(
        &mut self,
        seqs: &[&[u32]],
        logits: &[&[f32]],
        p: &GenParams,
        eos: &[u32],
    ) -> Advance {
        let k = self.slots.len();
        let vocab = logits[0].len();
        let cur_len = seqs[0].len();
        let mut acc = Vec::with_capacity(k * vocab);
        for (j, l) in logits.iter().enumerate() {
            let mut lp = log_softmax(l);
            process(&mut lp, seqs[j], self.prompt_len, p, eos);
            acc.extend(lp.iter().map(|x| x + self.scores[j]));
        }
        // The top 2k continuations (ties: lower index first, as a stable sort).
        let keep = 2.max(1 + eos.len()) * k;
        let mut top: Vec<usize> = (0..acc.len()).collect();
        top.select_nth_unstable_by(keep.min(acc.len()) - 1, |&a, &b| {
            acc[b].total_cmp(&acc[a]).then(a.cmp(&b))
        });
        top.truncate(keep);
        top.sort_by(|&a, &b| acc[b].total_cmp(&acc[a]).then(a.cmp(&b)));
        let ends = |c: usize| eos.contains(&((c % vocab) as u32)) || cur_len + 1 >= self.max_len;

        // Finished hypotheses: ending continuations among the top k.
        let norm = ((cur_len + 1 - self.prompt_len) as f32).powf(p.length_penalty);
        let full = self.finished.len() >= k && p.early_stopping;
        if self.open && !full {
            for &c in top.iter().take(k).filter(|&&c| ends(c)) {
                let mut seq = seqs[c / vocab].to_vec();
                seq.push((c % vocab) as u32);
                self.finished.push((acc[c] / norm, seq));
            }
            self.finished.sort_by(|a, b| b.0.total_cmp(&a.0));
            self.finished.truncate(k);
        }

        // Running beams: the best k continuations that do not end.
        let mut running: Vec<(usize, f32)> = top
            .iter()
            .map(|&c| (c, if ends(c) { acc[c] + NEG } else { acc[c] }))
            .collect();
        running.sort_by(|a, b| b.1.total_cmp(&a.1));
        running.truncate(k);
        let next: Vec<(usize, u32)> = running
            .iter()
            .map(|&(c, _)| (c / vocab, (c % vocab) as u32))
            .collect();
        self.scores = running.iter().map(|&(_, s)| s).collect();

        // transformers' stopping rules.
        let len = cur_len + 1 - self.prompt_len;
        if self.finished.len() >= k {
            let worst = self.finished.last().map_or(NEG, |f| f.0);
            let best_possible = self.scores[0] / (len as f32).powf(p.length_penalty);
            self.open &= best_possible > worst;
        }
        let all_end = top.iter().all(|&c| ends(c));
        let done = !self.open || (self.finished.len() >= k && p.early_stopping) || all_end;
        Advance { next, done }
    }

    /// The best hypothesis's new tokens (EOS dropped).
    pub fn best(&self, eos: &[u32]) -> Vec<u32> {
        let mut t = self
            .finished
            .first()
            .map(|f| f.1[self.prompt_len..].to_vec())
            .unwrap_or_default();
        if t.last().is_some_and(|x| eos.contains(x)) {
            t.pop();
        }
        t
    }
}
