//! A traced convnet on a [`Backend`]: weights uploaded once, then each batch
//! runs the program's ops (`conv2d`, `pool2d`, `add`, ReLU, `linear`) in
//! passes whose widest activation fits the backend's budget.

use lakecap_kernels::cpu::activation::softmax;
use lakecap_kernels::{Activation, Backend, HostData, Pool, Window};

use super::graph::{Op, Program};
use crate::error::{ModelError, Result};

/// An op with its weights on the device.
enum DeviceOp<B: Backend> {
    Input,
    Conv {
        src: usize,
        w: B::Tensor,
        b: B::Tensor,
        win: Window,
        residual: Option<usize>,
        relu: bool,
    },
    Relu(usize),
    Add(usize, usize),
    Pool {
        src: usize,
        win: Window,
        pool: Pool,
    },
    Mean(usize),
    Linear {
        src: usize,
        w: B::Tensor,
        b: B::Tensor,
    },
}

pub struct ConvNet<B: Backend> {
    ops: Vec<DeviceOp<B>>,
    /// Each op's operands, and the last op to read each value (freed after it).
    operands: Vec<Vec<usize>>,
    last_use: Vec<usize>,
    /// Softmax over the output (host side: a few classes per image).
    softmax: bool,
    /// `(h, w, c)` of an input image.
    pub input: (usize, usize, usize),
    pub classes: usize,
    /// Bytes of the widest activation (or im2col patches) per image.
    per_image: usize,
}

impl<B: Backend> ConvNet<B> {
    pub fn load(be: &B, prog: &Program) -> Result<ConvNet<B>> {
        let mut ops = Vec::with_capacity(prog.ops.len());
        let mut softmax = false;
        let mut per_image = 0usize;
        let up = |shape: &[usize], v: &[f32]| be.upload_weight(shape, HostData::F32(v));
        for (i, op) in prog.ops.iter().enumerate() {
            let width = prog.shapes[i].iter().product::<usize>();
            per_image = per_image.max(width * 4);
            ops.push(match op {
                Op::Input => DeviceOp::Input,
                Op::Conv {
                    src,
                    w,
                    b,
                    out,
                    win,
                    residual,
                    relu,
                } => {
                    if !win.is_pointwise() {
                        let (s, k) = (&prog.shapes[i], win.kernel.0 * win.kernel.1);
                        let patches = s[1] * s[2] * k * prog.shapes[*src][3] * 4;
                        per_image = per_image.max(be.conv_scratch(patches));
                    }
                    DeviceOp::Conv {
                        src: *src,
                        w: up(&[*out, w.len() / out], w)?,
                        b: up(&[*out], b)?,
                        win: *win,
                        residual: *residual,
                        relu: *relu,
                    }
                }
                Op::Relu(s) => DeviceOp::Relu(*s),
                Op::Add(a, b) => DeviceOp::Add(*a, *b),
                Op::Pool { src, win, pool } => DeviceOp::Pool {
                    src: *src,
                    win: *win,
                    pool: *pool,
                },
                Op::Mean(s) => DeviceOp::Mean(*s),
                Op::Linear { src, w, b, out } => DeviceOp::Linear {
                    src: *src,
                    w: up(&[*out, w.len() / out], w)?,
                    b: up(&[*out], b)?,
                },
                Op::Softmax(s) if i + 1 == prog.ops.len() && *s + 1 == i => {
                    softmax = true;
                    continue;
                }
                other => {
                    return Err(ModelError::Unsupported(format!(
                        "op {i} of the traced graph cannot run: {other:?}"
                    )));
                }
            });
        }
        let operands: Vec<Vec<usize>> = prog.ops[..ops.len()].iter().map(Op::operands).collect();
        let mut last_use = vec![0; ops.len()];
        for (i, srcs) in operands.iter().enumerate() {
            for &s in srcs {
                last_use[s] = i;
            }
        }
        let classes = *prog.shapes[ops.len() - 1].last().unwrap_or(&1);
        Ok(ConvNet {
            ops,
            operands,
            last_use,
            softmax,
            input: prog.input,
            classes,
            per_image,
        })
    }

    /// Images per pass under the backend's activation budget (at least one).
    pub fn per_pass(&self, be: &B) -> usize {
        be.activation_budget()
            .map_or(usize::MAX, |b| (b / self.per_image.max(1)).max(1))
    }

    /// `[n, h, w, c]` NHWC images (as the graph's input) -> `[n, classes]`
    /// outputs, softmaxed when the graph ends in a softmax.
    pub fn forward(&self, be: &B, images: &[f32]) -> Result<Vec<Vec<f32>>> {
        let (h, w, c) = self.input;
        let per = h * w * c;
        let mut out = Vec::with_capacity(images.len() / per.max(1));
        for chunk in images.chunks(per * self.per_pass(be)) {
            let n = chunk.len() / per;
            let x = be.upload(&[n, h, w, c], HostData::F32(chunk))?;
            let y = be.download(&self.run(be, x)?)?;
            out.extend(y.chunks(self.classes).map(|row| {
                let mut row = row.to_vec();
                if self.softmax {
                    softmax(&mut row);
                }
                row
            }));
        }
        Ok(out)
    }

    fn run(&self, be: &B, x: B::Tensor) -> Result<B::Tensor> {
        let mut vals: Vec<Option<B::Tensor>> = Vec::with_capacity(self.ops.len());
        let mut x = Some(x);
        for (i, op) in self.ops.iter().enumerate() {
            let get = |s: usize| {
                vals[s]
                    .as_ref()
                    .ok_or_else(|| ModelError::Worker(format!("op {i} reads freed op {s}")))
            };
            let y = match op {
                DeviceOp::Input => x.take().expect("one input op"),
                DeviceOp::Conv {
                    src,
                    w,
                    b,
                    win,
                    residual,
                    relu,
                } => {
                    let residual = residual.map(get).transpose()?;
                    let act = relu.then_some(Activation::Relu);
                    be.conv2d(get(*src)?, w, Some(b), win, residual, act)?
                }
                DeviceOp::Relu(s) => be.activation(get(*s)?, Activation::Relu)?,
                DeviceOp::Add(a, b) => be.add(get(*a)?, get(*b)?)?,
                DeviceOp::Pool { src, win, pool } => be.pool2d(get(*src)?, win, *pool)?,
                DeviceOp::Mean(s) => {
                    let t = get(*s)?;
                    let [n, h, w, c] = be.shape(t)[..] else {
                        return Err(ModelError::Worker("a mean over a non-image".into()));
                    };
                    let win = Window {
                        kernel: (h, w),
                        stride: (1, 1),
                        pad: [0; 4],
                    };
                    be.reshape(be.pool2d(t, &win, Pool::Avg)?, &[n, c])?
                }
                DeviceOp::Linear { src, w, b } => be.linear(get(*src)?, w, Some(b))?,
            };
            vals.push(Some(y));
            for &s in &self.operands[i] {
                if self.last_use[s] == i {
                    vals[s] = None;
                }
            }
        }
        vals.pop()
            .flatten()
            .ok_or_else(|| ModelError::Worker("the graph computed nothing".into()))
    }
}
