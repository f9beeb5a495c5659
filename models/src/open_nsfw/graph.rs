//! An ONNX convnet graph traced into a [`Program`]: the list of ops the
//! backend runs, with batch norms folded into the convolutions before them.
//!
//! Exported convnets are noisy: open_nsfw's graph (a Caffe model through
//! TensorFlow and PyTorch) has 309 `Cast`s, 110 `Transpose`s between NHWC and
//! NCHW, batch norm as `Sub`/`Mul`/`Add` by per-channel constants, and the
//! "SAME" padding of its stem and max pool computed at run time from `Shape`.
//! The trace walks the nodes in order with the input's size known:
//! - casts and identities pass values through; transposes between NHWC and
//!   NCHW only change how later ops read the axes (activations stay NHWC);
//! - integer subgraphs (`Shape`, `Gather`, `Concat`, `Slice`, arithmetic, …)
//!   are evaluated, so every padding becomes a constant;
//! - per-channel `Add`/`Sub`/`Mul`/`Div` by constants become one affine map,
//!   which [`Program::fold`] merges into the convolution or linear layer it
//!   follows; a zero `Pad` before a convolution and an edge `Pad` before a max
//!   pool become their window's padding; a residual `Add` and a `Relu` after a
//!   convolution become its epilogue.
//!
//! An op or pattern outside this set is an error naming the node. The batch
//! dimension reads as 1 in integer subgraphs (their results here depend only
//! on image sizes).

use lakecap_kernels::{Pool, Window};

use crate::error::{ModelError, Result};

/// One op of a traced convnet; operands are earlier ops' indices. Weights
/// are host f32, laid out for the backend (`conv2d`'s `[o, kh·kw·c]`,
/// `linear`'s `[n, k]`).
#[derive(Debug, Clone)]
pub enum Op {
    /// The image batch, NHWC.
    Input,
    /// A convolution, then (fused by [`Program::fold`]) `+ residual` and ReLU.
    Conv {
        src: usize,
        w: Vec<f32>,
        b: Vec<f32>,
        out: usize,
        win: Window,
        residual: Option<usize>,
        relu: bool,
    },
    /// `x · scale + shift` per channel (the last NHWC axis).
    Affine {
        src: usize,
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Relu(usize),
    Add(usize, usize),
    /// Explicit padding `[t, l, b, r]`, zeros or repeated edges.
    Pad {
        src: usize,
        pad: [usize; 4],
        edge: bool,
    },
    Pool {
        src: usize,
        win: Window,
        pool: Pool,
    },
    /// Mean over height and width -> `[n, c]`.
    Mean(usize),
    Linear {
        src: usize,
        w: Vec<f32>,
        b: Vec<f32>,
        out: usize,
    },
    /// Softmax over the last axis (the output's, done on the host).
    Softmax(usize),
    /// The same value as another op (left by folding).
    Alias(usize),
}

impl Op {
    /// Operand `from` becomes `to`.
    fn rename(&mut self, from: usize, to: usize) {
        let r = |s: &mut usize| {
            if *s == from {
                *s = to;
            }
        };
        match self {
            Op::Input => {}
            Op::Add(a, b) => {
                r(a);
                r(b);
            }
            Op::Conv { src, residual, .. } => {
                r(src);
                if let Some(res) = residual {
                    r(res);
                }
            }
            Op::Affine { src, .. }
            | Op::Pad { src, .. }
            | Op::Pool { src, .. }
            | Op::Linear { src, .. }
            | Op::Relu(src)
            | Op::Mean(src)
            | Op::Softmax(src)
            | Op::Alias(src) => r(src),
        }
    }

    /// The ops whose values this one reads.
    pub fn operands(&self) -> Vec<usize> {
        match self {
            Op::Input => vec![],
            Op::Add(a, b) => vec![*a, *b],
            Op::Conv { src, residual, .. } => [*src].into_iter().chain(*residual).collect(),
            Op::Affine { src, .. }
            | Op::Pad { src, .. }
            | Op::Pool { src, .. }
            | Op::Linear { src, .. } => vec![*src],
            Op::Relu(s) | Op::Mean(s) | Op::Softmax(s) | Op::Alias(s) => vec![*s],
        }
    }
}

/// A traced convnet: ops in execution order, the last one the output.
#[derive(Debug, Clone)]
pub struct Program {
    pub ops: Vec<Op>,
    /// NHWC shape of each op's value with batch 1 (`[1, c]` once pooled).
    pub shapes: Vec<Vec<usize>>,
    /// The input image `(h, w, c)`.
    pub input: (usize, usize, usize),
}

impl Program {
    pub(super) fn push(&mut self, op: Op, shape: Vec<usize>) -> usize {
        self.ops.push(op);
        self.shapes.push(shape);
        self.ops.len() - 1
    }

    /// How many ops read each op's value (aliases left by folding are read
    /// by nothing, so they do not count).
    fn uses(&self) -> Vec<usize> {
        let mut uses = vec![0; self.ops.len()];
        for op in self.ops.iter().filter(|o| !matches!(o, Op::Alias(_))) {
            for s in op.operands() {
                uses[s] += 1;
            }
        }
        uses[self.ops.len() - 1] += 1;
        uses
    }

    /// Folds affine maps into the convolution or linear layer before them
    /// (batch norm at load) and paddings into the window after them, then
    /// drops what is left unused. Errors on an op no backend call runs.
    pub fn fold(mut self) -> Result<Program> {
        for i in 0..self.ops.len() {
            let uses = self.uses();
            match self.ops[i].clone() {
                Op::Affine { src, scale, shift } if uses[src] == 1 => {
                    match &mut self.ops[src] {
                        Op::Conv {
                            w,
                            b,
                            out,
                            residual: None,
                            relu: false,
                            ..
                        }
                        | Op::Linear { w, b, out, .. } => {
                            let k = w.len() / *out;
                            for (o, (&s, &sh)) in scale.iter().zip(&shift).enumerate() {
                                w[o * k..(o + 1) * k].iter_mut().for_each(|v| *v *= s);
                                b[o] = b[o] * s + sh;
                            }
                        }
                        _ => continue,
                    }
                    // Later ops read the layer itself, so the next map of
                    // a chain (batch norm after a bias) folds too.
                    self.replace(i, src);
                }
                // A residual add after the later of its two operands, a
                // convolution read by nothing else, becomes its epilogue.
                Op::Add(a, b) => {
                    let (conv, other) = if a > b { (a, b) } else { (b, a) };
                    if uses[conv] == 1
                        && let Op::Conv {
                            residual: r @ None,
                            relu: false,
                            ..
                        } = &mut self.ops[conv]
                    {
                        *r = Some(other);
                        self.replace(i, conv);
                    }
                }
                Op::Relu(src) if uses[src] == 1 => {
                    if let Op::Conv {
                        relu: r @ false, ..
                    } = &mut self.ops[src]
                    {
                        *r = true;
                        self.replace(i, src);
                    }
                }
                Op::Conv { src, .. } | Op::Pool { src, .. } if uses[src] == 1 => {
                    let Op::Pad {
                        src: from,
                        pad,
                        edge,
                    } = self.ops[src]
                    else {
                        continue;
                    };
                    match &mut self.ops[i] {
                        // Zeros are a convolution's own padding.
                        Op::Conv { src, win, .. } if !edge => merge(src, win, from, pad),
                        // An edge value is also inside the window (pad <
                        // kernel), so it never changes a maximum.
                        Op::Pool {
                            src,
                            win,
                            pool: Pool::Max,
                        } if edge
                            && pad[0].max(pad[2]) < win.kernel.0
                            && pad[1].max(pad[3]) < win.kernel.1 =>
                        {
                            merge(src, win, from, pad)
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        self.compact()
    }

    /// Op `i`'s value is op `by`'s from now on.
    fn replace(&mut self, i: usize, by: usize) {
        for op in &mut self.ops[i + 1..] {
            op.rename(i, by);
        }
        self.ops[i] = Op::Alias(by);
    }

    /// Drops aliases and unused ops, renumbering operands.
    fn compact(self) -> Result<Program> {
        let uses = self.uses();
        let mut new_id = vec![usize::MAX; self.ops.len()];
        let mut out = Program {
            ops: Vec::new(),
            shapes: Vec::new(),
            input: self.input,
        };
        let last = self.ops.len() - 1;
        for (i, (op, shape)) in self.ops.into_iter().zip(self.shapes).enumerate() {
            let id = |s: usize| new_id[s];
            new_id[i] = match op {
                Op::Alias(s) => id(s),
                _ if uses[i] == 0 && i != last && !matches!(op, Op::Input) => continue,
                Op::Affine { .. } | Op::Pad { .. } => {
                    return Err(ModelError::Unsupported(format!(
                        "a per-channel scale or padding (op {i}) that does not fold into a \
                         convolution, linear layer or max pool: {}",
                        match op {
                            Op::Affine { .. } => "affine",
                            _ => "pad",
                        }
                    )));
                }
                mut op => {
                    match &mut op {
                        Op::Add(a, b) => (*a, *b) = (id(*a), id(*b)),
                        Op::Conv { src, residual, .. } => {
                            *src = id(*src);
                            *residual = residual.map(id);
                        }
                        Op::Pool { src, .. }
                        | Op::Linear { src, .. }
                        | Op::Relu(src)
                        | Op::Mean(src)
                        | Op::Softmax(src) => *src = id(*src),
                        _ => {}
                    }
                    out.ops.push(op);
                    out.shapes.push(shape);
                    out.ops.len() - 1
                }
            };
        }
        Ok(out)
    }
}

/// A padding op's source and sizes taken into the window after it.
fn merge(src: &mut usize, win: &mut Window, from: usize, pad: [usize; 4]) {
    *src = from;
    for (w, p) in win.pad.iter_mut().zip(pad) {
        *w += p;
    }
}
