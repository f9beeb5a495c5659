//! The decoder seam: what an architecture implements to be served by the
//! continuous-batching loop of [`crate::generate`] ([`Decoder`], the
//! [`Logits`] it returns as [`Want`]ed), and how to generate ([`GenParams`]).
//! Architectures import this module only, never the serving loop.

use lakecap_kernels::{Backend, Pos};

use crate::error::{ModelError, Result};

/// What the loop reads of each logits row of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Whole rows (logits processors, top-p over the full vocabulary, beams).
    All,
    /// Each row's `k` best (greedy and top-k decoding): a GPU sends back `k`
    /// values per row instead of the vocabulary.
    Top(usize),
}

/// The logits rows of one step, as [`Want`]ed (a decoder may always give `All`).
#[derive(Debug, Clone, PartialEq)]
pub enum Logits {
    /// `[rows, vocab]` flattened.
    All(Vec<f32>),
    /// Per row its `k` best values and token ids, best first (ties: lower id).
    Top {
        k: usize,
        values: Vec<f32>,
        ids: Vec<u32>,
    },
}

impl Logits {
    /// Reads logits `t [rows, vocab]` off `be` as `want` asks.
    pub fn read<B: Backend>(be: &B, t: &B::Tensor, want: Want) -> Result<Logits> {
        let vocab = be.shape(t).last().copied().unwrap_or(0);
        Ok(match want {
            Want::Top(k) if k <= vocab => {
                let (values, ids) = be.top_k(t, k)?;
                Logits::Top { k, values, ids }
            }
            _ => Logits::All(be.download(t)?),
        })
    }
}

/// A model the generation loop can drive.
pub trait Decoder {
    /// Sequences that can run at once.
    fn slots(&self) -> usize;
    /// Most positions (prompt and generated) per sequence.
    fn capacity(&self) -> usize;
    /// Runs `tokens` (token `i` at `at[i]`), storing their keys and values,
    /// and returns the logits of rows `last` as `want` asks.
    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits>;
    /// Sequences entering slots, with the context their request gave (an
    /// encoder-decoder encodes it here, once per sequence, all new ones in one
    /// batch). Decoder-only models have nothing to do.
    fn admit(&mut self, _new: &[(usize, &[f32])]) -> Result<()> {
        Ok(())
    }
    /// Beam search: slot `to` takes slot `from`'s first `len` positions for
    /// every `(from, to)` at once, and with `context` also its admitted
    /// context (an encoder-decoder's cross-attention state).
    fn fork(&mut self, _moves: &[(usize, usize)], _len: usize, _context: bool) -> Result<()> {
        Err(ModelError::Unsupported(
            "this model has no beam search".into(),
        ))
    }
}

impl<D: Decoder + ?Sized> Decoder for Box<D> {
    fn slots(&self) -> usize {
        (**self).slots()
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits> {
        (**self).step(tokens, at, last, want)
    }
    fn admit(&mut self, new: &[(usize, &[f32])]) -> Result<()> {
        (**self).admit(new)
    }
    fn fork(&mut self, moves: &[(usize, usize)], len: usize, context: bool) -> Result<()> {
        (**self).fork(moves, len, context)
    }
}

/// How to generate. The defaults are greedy decoding of up to 64 tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    pub max_new_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub seed: u64,
    /// Generation ends at the first of these; the text ends before it.
    pub stop: Vec<String>,
    /// Ignore EOS (benchmarks force a fixed length).
    pub ignore_eos: bool,
    /// EOS is not allowed before this many new tokens.
    pub min_new_tokens: usize,
    /// No n-gram of this size occurs twice in prompt + output (0: off).
    pub no_repeat_ngram_size: usize,
    /// Beam search with this many beams (1: greedy or sampling).
    pub num_beams: usize,
    /// Finished beams score `sum log-p / length ^ length_penalty`.
    pub length_penalty: f32,
    /// Stop as soon as `num_beams` hypotheses are finished.
    pub early_stopping: bool,
    /// Classifier-free guidance (Kornblith et al. 2023): each token is chosen
    /// from `uncond + scale · (cond − uncond)` in log-probabilities, where the
    /// unconditional branch decodes the same tokens with the request's
    /// `uncond` context. 1 is off.
    pub guidance_scale: f32,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop: Vec::new(),
            ignore_eos: false,
            min_new_tokens: 0,
            no_repeat_ngram_size: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            guidance_scale: 1.0,
        }
    }
}
