//! The serving loop of text generation: continuous batching for every
//! [`Decoder`] (the Llama family and BLIP's text decoder implement the seam
//! in [`crate::decode`]; this loop is what drives them).
//!
//! One worker thread owns the model and its KV caches. Each step it runs one
//! ragged batch: a token for every running sequence plus chunks of waiting
//! prompts (chunked prefill), up to [`STEP_TOKENS`]. A sequence that finishes
//! (EOS, a stop string, its token limit) leaves at once and its slot goes to
//! the next waiting prompt, so the batch never idles on its longest row.
//!
//! Sampling follows transformers' `generate`: repetition penalty, then
//! temperature, top-k and top-p, then a draw; temperature 0 is greedy
//! (first maximum, as `argmax`). Each row draws from its own generator seeded
//! by `seed` and the row's prompt, so a row's output does not depend on what
//! else shares its batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lakecap_kernels::Pos;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};

use crate::decode::{Decoder, GenParams, Logits, Want};
use crate::error::{ModelError, Result};
use crate::runtime::{Device, busy, catch, spawn_worker};

mod beam;
mod sampling;

use sampling::{log_softmax, sample, sample_top};

/// Most tokens one step runs (decode rows plus prefill chunks).
pub const STEP_TOKENS: usize = 512;

/// Largest `k` the loop asks for; wider top-k sampling reads whole rows.
const MAX_TOP: usize = 256;

/// How many of its best logits sequence `s` needs next, or `None` for the
/// whole row: beams and guidance, logits processors (they change scores
/// outside the best few), and sampling without a top-k.
fn top_needed(s: &Seq) -> Option<usize> {
    let p = &s.params;
    let min_len = s.tokens.len() - s.prompt_len < p.min_new_tokens;
    if s.group.is_some() || p.repetition_penalty != 1.0 || p.no_repeat_ngram_size > 0 || min_len {
        return None;
    }
    match (p.temperature <= 0.0, p.top_k) {
        (true, _) => Some(1),
        (false, k) if (1..=MAX_TOP).contains(&k) => Some(k),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Eos,
    Stop,
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Generated token ids (EOS excluded).
    pub tokens: Vec<u32>,
    pub finish: Finish,
}

/// Counters for tests, progress and benchmarks.
#[derive(Debug, Default)]
pub struct GenStats {
    pub steps: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub sequences: AtomicU64,
    /// Most sequences that ran in one step.
    pub max_running: AtomicU64,
}

/// Token ids -> text (special tokens skipped).
pub type Detokenize = Arc<dyn Fn(&[u32]) -> String + Send + Sync>;

type Replies = Vec<Result<Completion>>;

/// Per-row input beside the prompt (e.g. an image's pixels for a captioner).
pub type Context = Arc<[f32]>;

struct Request {
    prompts: Vec<Vec<u32>>,
    contexts: Vec<Option<Context>>,
    uncond: Option<Context>,
    params: Arc<GenParams>,
    reply: oneshot::Sender<Replies>,
}

/// A handle to a generation worker; cheap to clone.
#[derive(Clone)]
pub struct Generator {
    tx: mpsc::Sender<Request>,
    pub stats: Arc<GenStats>,
}

impl Generator {
    /// Starts a worker that builds its decoder with `init` (on its own thread,
    /// so device contexts stay there); `eos`: the end-of-sequence ids. On the
    /// CPU (`device`) the pool's other workers poll while a step runs ([`busy`]).
    pub fn spawn<D: Decoder + 'static>(
        name: &str,
        device: Device,
        init: impl FnOnce() -> Result<D> + Send + 'static,
        eos: Vec<u32>,
        detok: Detokenize,
    ) -> Result<Generator> {
        let (tx, rx) = mpsc::channel::<Request>(16);
        let stats = Arc::new(GenStats::default());
        let st = Arc::clone(&stats);
        let poll = matches!(device, Device::Cpu(_));
        spawn_worker(name, init, move |d| {
            Worker::new(d, eos, detok, st).run(rx, poll)
        })?;
        Ok(Generator { tx, stats })
    }

    /// Generates a completion for each prompt (token ids); one row's failure
    /// (an empty or too long prompt) is that row's error only.
    pub async fn generate(&self, prompts: Vec<Vec<u32>>, params: GenParams) -> Result<Replies> {
        self.generate_with(prompts, Vec::new(), None, params).await
    }

    /// [`Generator::generate`] with a context per row (empty: none), handed
    /// to the decoder's `admit` when the row starts, and the context of the
    /// unconditional branch of guided rows.
    pub async fn generate_with(
        &self,
        prompts: Vec<Vec<u32>>,
        contexts: Vec<Option<Context>>,
        uncond: Option<Context>,
        params: GenParams,
    ) -> Result<Replies> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let gone = || ModelError::Worker("the generation worker exited".into());
        self.tx
            .send(Request {
                prompts,
                contexts,
                uncond,
                params: Arc::new(params),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

struct Pending {
    results: Vec<Option<Result<Completion>>>,
    left: usize,
    reply: oneshot::Sender<Replies>,
}

#[derive(Clone)]
struct Seq {
    /// Beam search or guidance: the group and this member's index in it.
    group: Option<(u64, usize)>,
    /// Guidance: the unconditional branch's context (member 1's).
    uncond: Option<Context>,
    req: u64,
    idx: usize,
    slot: usize,
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Tokens already in the cache.
    fed: usize,
    params: Arc<GenParams>,
    rng: ChaCha8Rng,
    context: Option<Context>,
}

struct Worker<D> {
    dec: D,
    eos: Vec<u32>,
    detok: Detokenize,
    stats: Arc<GenStats>,
    pending: HashMap<u64, Pending>,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    free: Vec<usize>,
    next_req: u64,
    groups: HashMap<u64, beam::Group>,
}

/// Classifier-free guidance in log-probabilities: `u + scale · (c − u)`.
fn guide(cond: &[f32], uncond: &[f32], scale: f32) -> Vec<f32> {
    let (c, u) = (log_softmax(cond), log_softmax(uncond));
    c.iter().zip(&u).map(|(c, u)| u + scale * (c - u)).collect()
}

/// FNV-1a over the prompt: a per-row seed that is stable across builds.
fn prompt_hash(tokens: &[u32]) -> u64 {
    tokens.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, t| {
        t.to_le_bytes()
            .iter()
            .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
    })
}

impl<D: Decoder> Worker<D> {
    fn new(dec: D, eos: Vec<u32>, detok: Detokenize, stats: Arc<GenStats>) -> Self {
        let free = (0..dec.slots()).rev().collect();
        Worker {
            dec,
            eos,
            detok,
            stats,
            pending: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            free,
            next_req: 0,
            groups: HashMap::new(),
        }
    }

    fn accept(&mut self, r: Request) {
        let id = self.next_req;
        self.next_req += 1;
        let n = r.prompts.len();
        self.pending.insert(
            id,
            Pending {
                results: (0..n).map(|_| None).collect(),
                left: n,
                reply: r.reply,
            },
        );
        let cap = self.dec.capacity();
        let mut contexts = r.contexts.into_iter();
        for (idx, prompt) in r.prompts.into_iter().enumerate() {
            let context = contexts.next().flatten();
            let beams = r.params.num_beams;
            let guided = r.params.guidance_scale != 1.0;
            let bad_guidance = guided && (beams > 1 || r.uncond.is_none() || self.dec.slots() < 2);
            if prompt.is_empty() || prompt.len() >= cap || beams > self.dec.slots() || bad_guidance
            {
                let why = if prompt.is_empty() {
                    "empty prompt".to_string()
                } else if bad_guidance {
                    "guidance needs greedy or sampled decoding (not beams), an unconditional \
                     context and two sequence slots"
                        .to_string()
                } else if beams > self.dec.slots() {
                    format!(
                        "{beams} beams need as many sequence slots; this model was loaded with {} \
                         (lakecap.batch_size when it was first used)",
                        self.dec.slots()
                    )
                } else {
                    format!(
                        "prompt of {} tokens does not fit the context of {cap} positions",
                        prompt.len()
                    )
                };
                self.finish(id, idx, Err(ModelError::Unsupported(why)));
                continue;
            }
            let rng = ChaCha8Rng::seed_from_u64(r.params.seed ^ prompt_hash(&prompt));
            self.waiting.push_back(Seq {
                group: None,
                uncond: if guided { r.uncond.clone() } else { None },
                req: id,
                idx,
                slot: usize::MAX,
                prompt_len: prompt.len(),
                tokens: prompt,
                fed: 0,
                params: Arc::clone(&r.params),
                rng,
                context,
            });
        }
    }

    fn finish(&mut self, req: u64, idx: usize, out: Result<Completion>) {
        let p = self.pending.get_mut(&req).expect("pending request");
        p.results[idx] = Some(out);
        p.left -= 1;
        if p.left == 0 {
            let p = self.pending.remove(&req).expect("pending request");
            let _ = p.reply.send(
                p.results
                    .into_iter()
                    .map(|r| r.expect("every row answered"))
                    .collect(),
            );
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Request>, poll: bool) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match rx.blocking_recv() {
                    Some(r) => self.accept(r),
                    None => return,
                }
            }
            // Take what has arrived, keeping the local queue bounded.
            while self.waiting.len() < 4 * self.dec.slots().max(1) {
                match rx.try_recv() {
                    Ok(r) => self.accept(r),
                    Err(_) => break,
                }
            }
            let first_new = self.running.len();
            while let Some(s) = self.waiting.front() {
                // A beam-search row starts with all its beams' slots, a
                // guided row with its two branches'.
                let guided = s.uncond.is_some();
                let need = if guided { 2 } else { s.params.num_beams.max(1) };
                if self.free.len() < need {
                    break;
                }
                let mut s = self.waiting.pop_front().expect("a waiting row");
                if need == 1 {
                    s.slot = self.free.pop().expect("a free slot");
                    self.running.push(s);
                    continue;
                }
                let slots: Vec<usize> = (0..need).map(|_| self.free.pop().expect("free")).collect();
                let gid = self.next_req;
                self.next_req += 1;
                let max_len = (s.prompt_len + s.params.max_new_tokens).min(self.dec.capacity());
                let mut group = beam::Group::new(slots.clone(), s.prompt_len, max_len);
                group.guided = guided;
                self.groups.insert(gid, group);
                for (j, &slot) in slots.iter().enumerate() {
                    let mut b = s.clone();
                    b.slot = slot;
                    b.group = Some((gid, j));
                    // Beam 0 brings the context and the other beams copy its
                    // state; a guided row's member 1 brings the unconditional one.
                    if j > 0 {
                        b.context = if guided { s.uncond.clone() } else { None };
                    }
                    self.running.push(b);
                }
            }
            if first_new < self.running.len() && !self.admit(first_new) {
                continue;
            }
            if !self.running.is_empty() {
                match poll {
                    true => busy(|| self.step()),
                    false => self.step(),
                }
            }
        }
    }

    /// Hands the sequences from `first` on to the decoder's `admit`; on an
    /// error they are answered with it and leave (false).
    fn admit(&mut self, first: usize) -> bool {
        let new: Vec<(usize, &[f32])> = self.running[first..]
            .iter()
            .filter_map(|s| s.context.as_deref().map(|c| (s.slot, c)))
            .collect();
        if new.is_empty() {
            return true;
        }
        let dec = &mut self.dec;
        match catch(|| dec.admit(&new)) {
            Ok(()) => {
                // A beam group's other beams take beam 0's encoded context.
                let forks: Vec<(usize, usize)> = self.running[first..]
                    .iter()
                    .filter(|s| s.context.is_some())
                    .filter_map(|s| s.group.map(|(g, _)| (s.slot, g)))
                    .filter(|(_, g)| !self.groups[g].guided)
                    .flat_map(|(from, g)| {
                        self.groups[&g].slots[1..].iter().map(move |&to| (from, to))
                    })
                    .collect();
                let dec = &mut self.dec;
                if !forks.is_empty()
                    && let Err(e) = catch(|| dec.fork(&forks, 0, true))
                {
                    self.fail_from(first, &e);
                    return false;
                }
                // Encoded: the context's memory can go.
                self.running[first..]
                    .iter_mut()
                    .for_each(|s| s.context = None);
                true
            }
            Err(e) => {
                self.fail_from(first, &e);
                false
            }
        }
    }

    /// Answers the running sequences from `first` on with `e`; they leave.
    fn fail_from(&mut self, first: usize, e: &ModelError) {
        let msg = e.to_string();
        for s in self.running.split_off(first) {
            self.free.push(s.slot);
            if let Some((g, j)) = s.group {
                if j > 0 {
                    continue; // the group answers once, through beam 0
                }
                self.groups.remove(&g);
            }
            self.finish(s.req, s.idx, Err(ModelError::Worker(msg.clone())));
        }
    }

    /// One ragged batch: decode rows first, then prefill chunks.
    fn step(&mut self) {
        let (mut tokens, mut at, mut last, mut sampled) = (vec![], vec![], vec![], vec![]);
        let mut order: Vec<usize> = (0..self.running.len()).collect();
        // Shortest work first; a beam group's members side by side.
        order.sort_by_key(|&i| {
            let s = &self.running[i];
            (s.tokens.len() - s.fed, s.group)
        });
        let mut skipped = Vec::new();
        for i in order {
            let s = &self.running[i];
            let want = s.tokens.len() - s.fed;
            let left = STEP_TOKENS.saturating_sub(tokens.len());
            let n = match s.group {
                // A group runs all its beams whole, or waits for a later step.
                Some((g, j)) => {
                    let k = self.groups[&g].slots.len();
                    if skipped.contains(&g) || (j == 0 && !tokens.is_empty() && want * k > left) {
                        skipped.push(g);
                        0
                    } else {
                        want
                    }
                }
                None => want.min(left),
            };
            if n == 0 {
                continue;
            }
            let s = &mut self.running[i];
            for p in s.fed..s.fed + n {
                tokens.push(s.tokens[p]);
                at.push(Pos {
                    slot: s.slot,
                    pos: p,
                });
            }
            if s.fed < s.prompt_len {
                let fresh = (s.prompt_len.min(s.fed + n) - s.fed) as u64;
                self.stats.prompt_tokens.fetch_add(fresh, Ordering::Relaxed);
            }
            s.fed += n;
            if n == want {
                last.push(tokens.len() - 1);
                sampled.push(i);
            }
        }
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats
            .max_running
            .fetch_max(self.running.len() as u64, Ordering::Relaxed);
        // Whole rows only when some row needs more than its best few.
        let want = sampled
            .iter()
            .try_fold(1, |k, &i| top_needed(&self.running[i]).map(|n| n.max(k)))
            .map_or(Want::All, Want::Top);
        let dec = &mut self.dec;
        let logits = match catch(|| dec.step(&tokens, &at, &last, want)) {
            Ok(l) => l,
            Err(e) => {
                // The whole batch fails; its sequences are answered, slots freed.
                self.fail_from(0, &e);
                return;
            }
        };
        let (all, vocab) = match &logits {
            Logits::All(v) => (v.as_slice(), v.len() / last.len().max(1)),
            Logits::Top { .. } => (&[][..], 0),
        };
        let row_of = |r: usize| &all[r * vocab..(r + 1) * vocab];
        let mut done = Vec::new();
        let mut beams: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        for (row, &i) in sampled.iter().enumerate() {
            if let Some((g, _)) = self.running[i].group {
                beams.entry(g).or_default().push((i, row));
                continue;
            }
            let s = &mut self.running[i];
            let next = match &logits {
                Logits::All(_) => sample(row_of(row), s, &self.eos),
                Logits::Top { k, values, ids } => sample_top(
                    &values[row * k..(row + 1) * k],
                    &ids[row * k..(row + 1) * k],
                    s,
                ),
            };
            self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = self.check_done(i, next) {
                done.push((i, f));
            }
        }
        let mut leaving: Vec<usize> = done.iter().map(|(i, _)| *i).collect();
        for (g, mut members) in beams {
            members.sort_by_key(|&(i, _)| self.running[i].group.map(|(_, j)| j));
            if self.groups[&g].guided {
                let (i0, i1) = (members[0].0, members[1].0);
                let scale = self.running[i0].params.guidance_scale;
                let mixed = guide(row_of(members[0].1), row_of(members[1].1), scale);
                let next = sample(&mixed, &mut self.running[i0], &self.eos);
                self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
                match self.check_done(i0, next) {
                    Some(f) => {
                        done.push((i0, f));
                        leaving.push(i0);
                        leaving.push(i1);
                        self.groups.remove(&g);
                    }
                    None => self.running[i1].tokens.push(next),
                }
            } else if self.beam_step(g, &members, all, vocab) {
                leaving.extend(members.iter().map(|&(i, _)| i));
            }
        }
        let mut finished: HashMap<usize, (Finish, String)> = done.into_iter().collect();
        leaving.sort_unstable_by(|a, b| b.cmp(a));
        leaving.dedup();
        for i in leaving {
            let s = self.running.swap_remove(i);
            self.free.push(s.slot);
            let Some((finish, text)) = finished.remove(&i) else {
                continue; // a beam of a finished group (answered by beam_step)
            };
            self.stats.sequences.fetch_add(1, Ordering::Relaxed);
            let tokens = s.tokens[s.prompt_len..].to_vec();
            self.finish(
                s.req,
                s.idx,
                Ok(Completion {
                    text,
                    tokens,
                    finish,
                }),
            );
        }
    }

    /// One beam-search step of group `g` from its members' logits rows
    /// (`(running index, row)`, in beam order); reorders their caches. When
    /// the search ends it answers the row and returns true (the members then
    /// leave).
    fn beam_step(
        &mut self,
        g: u64,
        members: &[(usize, usize)],
        logits: &[f32],
        vocab: usize,
    ) -> bool {
        let first = &self.running[members[0].0];
        let (req, idx, params) = (first.req, first.idx, Arc::clone(&first.params));
        let seqs: Vec<Vec<u32>> = members
            .iter()
            .map(|&(i, _)| self.running[i].tokens.clone())
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let rows: Vec<&[f32]> = members
            .iter()
            .map(|&(_, r)| &logits[r * vocab..(r + 1) * vocab])
            .collect();
        let group = self.groups.get_mut(&g).expect("a running group");
        let adv = group.advance(&refs, &rows, &params, &self.eos);
        self.stats
            .generated_tokens
            .fetch_add(members.len() as u64, Ordering::Relaxed);
        if adv.done {
            let tokens = group.best(&self.eos);
            let ended_by_eos = group
                .finished
                .first()
                .is_some_and(|f| f.1.last().is_some_and(|t| self.eos.contains(t)));
            self.groups.remove(&g);
            self.stats.sequences.fetch_add(1, Ordering::Relaxed);
            let text = (self.detok)(&tokens);
            let finish = if ended_by_eos {
                Finish::Eos
            } else {
                Finish::Length
            };
            self.finish(
                req,
                idx,
                Ok(Completion {
                    text,
                    tokens,
                    finish,
                }),
            );
            return true;
        }
        let slots = group.slots.clone();
        let moves: Vec<(usize, usize)> = adv
            .next
            .iter()
            .enumerate()
            .filter(|(j, (parent, _))| parent != j)
            .map(|(j, &(parent, _))| (slots[parent], slots[j]))
            .collect();
        let len = seqs[0].len();
        let dec = &mut self.dec;
        if !moves.is_empty()
            && let Err(e) = catch(|| dec.fork(&moves, len, false))
        {
            self.groups.remove(&g);
            self.finish(req, idx, Err(ModelError::Worker(e.to_string())));
            return true;
        }
        for (&(i, _), &(parent, tok)) in members.iter().zip(&adv.next) {
            let s = &mut self.running[i];
            s.tokens = seqs[parent].clone();
            s.tokens.push(tok);
            s.fed = len;
        }
        false
    }

    /// Appends `next` to sequence `i`; returns how it ended and its text when it did.
    fn check_done(&mut self, i: usize, next: u32) -> Option<(Finish, String)> {
        let cap = self.dec.capacity();
        let s = &mut self.running[i];
        if !s.params.ignore_eos && self.eos.contains(&next) {
            return Some((Finish::Eos, (self.detok)(&s.tokens[s.prompt_len..])));
        }
        s.tokens.push(next);
        let generated = &s.tokens[s.prompt_len..];
        if !s.params.stop.is_empty() {
            let text = (self.detok)(generated);
            let cut = s
                .params
                .stop
                .iter()
                .filter_map(|st| text.find(st.as_str()))
                .min();
            if let Some(c) = cut {
                return Some((Finish::Stop, text[..c].to_string()));
            }
        }
        if generated.len() >= s.params.max_new_tokens || s.tokens.len() >= cap {
            return Some((Finish::Length, (self.detok)(generated)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy decoder: the next token is (last token + 1) mod vocab, so outputs
    /// are predictable; it checks that positions arrive in order per slot.
    struct Counter {
        vocab: usize,
        slots: usize,
        seen: Vec<usize>,
    }

    impl Decoder for Counter {
        fn slots(&self) -> usize {
            self.slots
        }
        fn capacity(&self) -> usize {
            64
        }
        fn step(
            &mut self,
            tokens: &[u32],
            at: &[Pos],
            last: &[usize],
            _want: Want,
        ) -> Result<Logits> {
            for p in at {
                if p.pos != 0 && p.pos != self.seen[p.slot] {
                    return Err(ModelError::Worker(format!("gap at {p:?}")));
                }
                self.seen[p.slot] = p.pos + 1;
            }
            let mut out = vec![0f32; last.len() * self.vocab];
            for (r, &i) in last.iter().enumerate() {
                out[r * self.vocab + (tokens[i] as usize + 1) % self.vocab] = 1.0;
            }
            Ok(Logits::All(out))
        }
    }

    fn generator(slots: usize) -> Generator {
        let detok: Detokenize = Arc::new(|t: &[u32]| {
            t.iter()
                .map(|x| char::from(b'a' + (*x % 26) as u8))
                .collect()
        });
        Generator::spawn(
            "test",
            Device::CPU,
            move || {
                Ok(Counter {
                    vocab: 30,
                    slots,
                    seen: vec![0; slots],
                })
            },
            vec![29],
            detok,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn continuous_batching_finishes_rows_independently() {
        let g = generator(2);
        let params = GenParams {
            max_new_tokens: 5,
            ..Default::default()
        };
        // Row 0 hits EOS (29) after 2 tokens; the others run to the limit.
        let prompts = vec![vec![1, 2, 26], vec![3], vec![10, 11], vec![], vec![0; 64]];
        let out = g.generate(prompts, params.clone()).await.unwrap();
        let ok = |i: usize| out[i].as_ref().unwrap();
        assert_eq!(ok(0).tokens, vec![27, 28]);
        assert_eq!(ok(0).finish, Finish::Eos);
        assert_eq!(ok(1).tokens, vec![4, 5, 6, 7, 8]);
        assert_eq!(ok(1).text, "efghi");
        assert_eq!(ok(1).finish, Finish::Length);
        assert_eq!(ok(2).tokens, vec![12, 13, 14, 15, 16]);
        assert!(
            out[3]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("empty prompt")
        );
        assert!(
            out[4]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
        let many = GenParams {
            num_beams: 3,
            ..params.clone()
        };
        let out = g.generate(vec![vec![1]], many).await.unwrap();
        assert!(
            out[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("3 beams need")
        );
        // Three rows through two slots: the third joined when the first left.
        assert_eq!(g.stats.sequences.load(Ordering::Relaxed), 3);
        assert_eq!(g.stats.max_running.load(Ordering::Relaxed), 2);

        let stop = GenParams {
            stop: vec!["gh".into()],
            ..params
        };
        let out = g.generate(vec![vec![3]], stop).await.unwrap();
        let c = out[0].as_ref().unwrap();
        assert_eq!((c.text.as_str(), c.finish), ("ef", Finish::Stop));
    }

    #[test]
    fn sampling_follows_the_processors() {
        let mk = |params: GenParams| Seq {
            group: None,
            uncond: None,
            req: 0,
            idx: 0,
            slot: 0,
            tokens: vec![2],
            prompt_len: 1,
            fed: 1,
            params: Arc::new(params),
            rng: ChaCha8Rng::seed_from_u64(5),
            context: None,
        };
        let logits = [1.0, 3.0, 3.0, -2.0];
        assert_eq!(
            sample(&logits, &mut mk(GenParams::default()), &[]),
            1,
            "first maximum"
        );
        // EOS (1) banned before min_new_tokens.
        let min = GenParams {
            min_new_tokens: 1,
            ..Default::default()
        };
        assert_eq!(sample(&logits, &mut mk(min), &[1]), 2);
        // Tokens [2, 1, 2]: a bigram ban forbids 1 after 2 (2-1 seen).
        let mut s = mk(GenParams {
            no_repeat_ngram_size: 2,
            ..Default::default()
        });
        s.tokens = vec![2, 1, 2];
        assert_eq!(sample(&logits, &mut s, &[]), 2);
        // Repetition penalty on token 2 is irrelevant to token 1's win; on
        // token 1 (seen) it lets token 2 win.
        let mut s = mk(GenParams {
            repetition_penalty: 2.0,
            ..Default::default()
        });
        s.tokens = vec![1];
        assert_eq!(sample(&logits, &mut s, &[]), 2);
        // top_k = 1 is greedy whatever the temperature.
        let mut s = mk(GenParams {
            temperature: 5.0,
            top_k: 1,
            ..Default::default()
        });
        assert!((0..50).all(|_| sample(&logits, &mut s, &[]) == 1));
        // top_p keeps only the two 3.0 logits (mass ≈ 0.93 ≥ 0.9).
        let mut s = mk(GenParams {
            temperature: 1.0,
            top_p: 0.9,
            ..Default::default()
        });
        let draws: Vec<u32> = (0..400).map(|_| sample(&logits, &mut s, &[])).collect();
        assert!(draws.iter().all(|&t| t == 1 || t == 2));
        let ones = draws.iter().filter(|&&t| t == 1).count();
        assert!(
            (140..260).contains(&ones),
            "{ones} of 400 should be near half"
        );
    }
}
