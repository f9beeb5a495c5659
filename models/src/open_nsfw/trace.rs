//! The trace of an ONNX graph into a [`Program`] (see [`super::graph`]):
//! values walked in node order with the input's size known, integer
//! subgraphs evaluated, activations tracked with the axis order later nodes
//! read them in (they stay NHWC), each compute node appended as an [`Op`].

use std::collections::HashMap;

use lakecap_kernels::{Pool, Window};

use super::graph::{Op, Program};
use crate::error::{ModelError, Result};
use crate::onnx::{GraphProto, NodeProto, Tensor, Values};

/// A traced value: an activation (op index, with the logical axis order later
/// nodes read it in) or a constant.
#[derive(Debug, Clone)]
enum Val {
    Act { id: usize, nchw: bool },
    Const(Tensor),
}

struct Tracer<'g> {
    inits: HashMap<&'g str, &'g crate::onnx::TensorProto>,
    vals: HashMap<String, Val>,
    prog: Program,
}

fn unsupported(node: &NodeProto, why: impl std::fmt::Display) -> ModelError {
    ModelError::Unsupported(format!(
        "ONNX node `{}` ({}): {why}",
        node.name, node.op_type
    ))
}

impl Program {
    /// Traces `graph`, whose one input is an NHWC image batch of fixed size.
    pub fn trace(graph: &GraphProto) -> Result<Program> {
        let inits: HashMap<&str, _> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let input = graph
            .input
            .iter()
            .find(|i| !inits.contains_key(i.name.as_str()))
            .ok_or_else(|| ModelError::Unsupported("the ONNX graph has no input".into()))?;
        let (h, w, c) = match input.dims()[..] {
            [_, Some(h), Some(w), Some(c @ (1 | 3 | 4))] => (h, w, c),
            ref d => {
                return Err(ModelError::Unsupported(format!(
                    "ONNX input `{}` of shape {d:?}: an NHWC image batch of fixed size is needed",
                    input.name
                )));
            }
        };
        let mut t = Tracer {
            inits,
            vals: HashMap::new(),
            prog: Program {
                ops: vec![Op::Input],
                shapes: vec![vec![1, h, w, c]],
                input: (h, w, c),
            },
        };
        t.vals
            .insert(input.name.clone(), Val::Act { id: 0, nchw: false });
        for node in &graph.node {
            t.node(node)?;
        }
        let out = graph
            .output
            .first()
            .ok_or_else(|| ModelError::Unsupported("the ONNX graph has no output".into()))?;
        match t.vals.get(&out.name) {
            Some(Val::Act { id, .. }) if *id + 1 == t.prog.ops.len() => Ok(t.prog),
            _ => Err(ModelError::Unsupported(format!(
                "ONNX output `{}` is not the graph's last computed value",
                out.name
            ))),
        }
    }
}

impl Tracer<'_> {
    fn val(&self, node: &NodeProto, i: usize) -> Result<Val> {
        let name = node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| unsupported(node, format!("input {i} is missing")))?;
        if let Some(v) = self.vals.get(name) {
            return Ok(v.clone());
        }
        match self.inits.get(name.as_str()) {
            Some(t) => Ok(Val::Const(Tensor::from_proto(t)?)),
            None => Err(unsupported(node, format!("input `{name}` is not defined"))),
        }
    }

    fn konst(&self, node: &NodeProto, i: usize) -> Result<Tensor> {
        match self.val(node, i)? {
            Val::Const(t) => Ok(t),
            Val::Act { .. } => Err(unsupported(node, format!("input {i} must be a constant"))),
        }
    }

    /// An optional constant input (`None` when absent or empty).
    fn opt_konst(&self, node: &NodeProto, i: usize) -> Result<Option<Tensor>> {
        match node.input.get(i).filter(|n| !n.is_empty()) {
            Some(_) => self.konst(node, i).map(Some),
            None => Ok(None),
        }
    }

    fn act(&self, node: &NodeProto, i: usize) -> Result<(usize, bool)> {
        match self.val(node, i)? {
            Val::Act { id, nchw } => Ok((id, nchw)),
            Val::Const(_) => Err(unsupported(node, format!("input {i} must be computed"))),
        }
    }

    fn set(&mut self, node: &NodeProto, v: Val) {
        if let Some(out) = node.output.first() {
            self.vals.insert(out.clone(), v);
        }
    }

    /// The NHWC shape of op `id`, read in `nchw` order when set.
    fn logical(&self, id: usize, nchw: bool) -> Vec<usize> {
        let s = &self.prog.shapes[id];
        match (nchw, s.len()) {
            (true, 4) => vec![s[0], s[3], s[1], s[2]],
            _ => s.clone(),
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        let op = node.op_type.as_str();
        let v = match op {
            "Identity" | "Cast" | "Dropout" => match self.val(node, 0)? {
                Val::Const(t) if op == "Cast" => Val::Const(cast(node, t)?),
                v => v,
            },
            "Constant" => Val::Const(match node.attr("value").and_then(|a| a.t.as_ref()) {
                Some(t) => Tensor::from_proto(t)?,
                None => return Err(unsupported(node, "only tensor `value`s are supported")),
            }),
            "Transpose" => {
                let perm = node.ints("perm");
                match self.val(node, 0)? {
                    Val::Act { id, nchw } => {
                        let nchw = match perm[..] {
                            [0, 3, 1, 2] if !nchw => true,
                            [0, 2, 3, 1] if nchw => false,
                            _ => return Err(unsupported(node, format!("permutation {perm:?}"))),
                        };
                        Val::Act { id, nchw }
                    }
                    Val::Const(t) => Val::Const(transpose(node, &t, &perm)?),
                }
            }
            "Shape" => {
                let s = match self.val(node, 0)? {
                    Val::Act { id, nchw } => self.logical(id, nchw),
                    Val::Const(t) => t.dims,
                };
                Val::Const(ints(vec![s.len()], s.iter().map(|&d| d as i64).collect()))
            }
            "Gather" | "Concat" | "Reshape" | "Slice" | "Unsqueeze" | "ConstantOfShape" => {
                Val::Const(self.shape_op(node)?)
            }
            "Add" | "Sub" | "Mul" | "Div" => self.arith(node)?,
            "Relu" => {
                let (id, nchw) = self.act(node, 0)?;
                let shape = self.prog.shapes[id].clone();
                Val::Act {
                    id: self.prog.push(Op::Relu(id), shape),
                    nchw,
                }
            }
            "Pad" => self.pad(node)?,
            "Conv" => self.conv(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "ReduceMean" | "GlobalAveragePool" => self.mean(node)?,
            "MatMul" | "Gemm" => self.matmul(node)?,
            "Softmax" => {
                let (id, _) = self.act(node, 0)?;
                let shape = self.prog.shapes[id].clone();
                let axis = node.int("axis", -1);
                if shape.len() != 2 || !(axis == -1 || axis == 1) {
                    return Err(unsupported(
                        node,
                        "softmax over the last axis of [n, classes] only",
                    ));
                }
                Val::Act {
                    id: self.prog.push(Op::Softmax(id), shape),
                    nchw: false,
                }
            }
            _ => return Err(unsupported(node, "this op is not supported")),
        };
        self.set(node, v);
        Ok(())
    }

    /// Integer subgraph ops on constants.
    fn shape_op(&self, node: &NodeProto) -> Result<Tensor> {
        let x = self.konst(node, 0)?;
        Ok(match node.op_type.as_str() {
            "Gather" => {
                let idx = self.konst(node, 1)?;
                if node.int("axis", 0) != 0 || x.dims.len() != 1 {
                    return Err(unsupported(node, "gathers from 1-D constants only"));
                }
                let v = x.i64();
                let pick = idx
                    .i64()
                    .iter()
                    .map(|&i| {
                        let i = if i < 0 { i + v.len() as i64 } else { i };
                        v.get(i as usize)
                            .copied()
                            .ok_or_else(|| unsupported(node, "index out of range"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                ints(idx.dims, pick)
            }
            "Concat" => {
                if node.int("axis", 0) != 0 {
                    return Err(unsupported(node, "concatenation on axis 0 only"));
                }
                let mut v = Vec::new();
                for i in 0..node.input.len() {
                    v.extend(self.konst(node, i)?.i64());
                }
                ints(vec![v.len()], v)
            }
            "Reshape" => {
                let spec = self.konst(node, 1)?.i64();
                let n = x.len();
                let mut dims: Vec<usize> = spec
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match d {
                        0 => x.dims.get(i).copied().unwrap_or(1),
                        d if d < 0 => 1,
                        d => d as usize,
                    })
                    .collect();
                if let Some(at) = spec.iter().position(|&d| d < 0) {
                    dims[at] = n / dims.iter().product::<usize>().max(1);
                }
                if dims.iter().product::<usize>() != n {
                    return Err(unsupported(node, format!("{n} values into {spec:?}")));
                }
                Tensor {
                    dims,
                    values: x.values,
                }
            }
            "Slice" => slice(node, &x, [1, 2, 3, 4].map(|i| self.opt_konst(node, i)))?,
            "Unsqueeze" => {
                let axes = match self.opt_konst(node, 1)? {
                    Some(a) => a.i64(),
                    None => node.ints("axes"),
                };
                let mut dims = x.dims.clone();
                let rank = (dims.len() + axes.len()) as i64;
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| (if a < 0 { a + rank } else { a }) as usize)
                    .collect();
                axes.sort_unstable();
                for a in axes {
                    dims.insert(a.min(dims.len()), 1);
                }
                Tensor {
                    dims,
                    values: x.values,
                }
            }
            _ => {
                // ConstantOfShape
                let dims: Vec<usize> = x.i64().iter().map(|&d| d.max(0) as usize).collect();
                let n = dims.iter().product();
                let fill = node.attr("value").and_then(|a| a.t.as_ref());
                match fill.map(Tensor::from_proto).transpose()? {
                    Some(Tensor {
                        values: Values::F32(v),
                        ..
                    }) => Tensor {
                        dims,
                        values: Values::F32(vec![v.first().copied().unwrap_or(0.0); n]),
                    },
                    Some(t) => ints(dims, vec![t.i64().first().copied().unwrap_or(0); n]),
                    None => Tensor {
                        dims,
                        values: Values::F32(vec![0.0; n]),
                    },
                }
            }
        })
    }

    /// `Add`/`Sub`/`Mul`/`Div`: constants fold, two activations add
    /// (residuals), an activation and a per-channel constant is an affine map.
    fn arith(&mut self, node: &NodeProto) -> Result<Val> {
        let op = node.op_type.as_str();
        Ok(match (self.val(node, 0)?, self.val(node, 1)?) {
            (Val::Const(a), Val::Const(b)) => Val::Const(elementwise(node, &a, &b)?),
            (Val::Act { id: a, nchw }, Val::Act { id: b, nchw: nb }) if op == "Add" => {
                if nchw != nb || self.prog.shapes[a] != self.prog.shapes[b] {
                    return Err(unsupported(node, "adds activations of different shapes"));
                }
                let shape = self.prog.shapes[a].clone();
                Val::Act {
                    id: self.prog.push(Op::Add(a, b), shape),
                    nchw,
                }
            }
            (Val::Act { id, nchw }, Val::Const(c)) => self.affine(node, id, nchw, &c, false)?,
            (Val::Const(c), Val::Act { id, nchw }) if op != "Div" => {
                self.affine(node, id, nchw, &c, op == "Sub")?
            }
            _ => return Err(unsupported(node, "needs a constant operand")),
        })
    }

    /// `act op c` (or `c - act` when `negate`) for a constant that varies
    /// only along the channel axis.
    fn affine(
        &mut self,
        node: &NodeProto,
        id: usize,
        nchw: bool,
        c: &Tensor,
        negate: bool,
    ) -> Result<Val> {
        let shape = self.prog.shapes[id].clone();
        let ch = *shape.last().unwrap_or(&1);
        let logical = self.logical(id, nchw);
        let axis = if nchw && logical.len() == 4 {
            1
        } else {
            logical.len() - 1
        };
        // The constant's dims right-aligned against the activation's: only the
        // channel axis may differ from 1.
        let per_channel = c.dims.len() <= logical.len()
            && c.dims
                .iter()
                .rev()
                .enumerate()
                .all(|(i, &d)| d == 1 || (logical.len() - 1 - i == axis && d == ch));
        if !per_channel {
            return Err(unsupported(
                node,
                format!("constant {:?} is not per channel of {logical:?}", c.dims),
            ));
        }
        let v = c.f32();
        let at = |o: usize| if v.len() == 1 { v[0] } else { v[o] };
        let (mut scale, mut shift) = (vec![1.0f32; ch], vec![0.0f32; ch]);
        for o in 0..ch {
            match node.op_type.as_str() {
                "Add" => shift[o] = at(o),
                "Sub" if negate => (scale[o], shift[o]) = (-1.0, at(o)),
                "Sub" => shift[o] = -at(o),
                "Mul" => scale[o] = at(o),
                _ => scale[o] = 1.0 / at(o),
            }
        }
        Ok(Val::Act {
            id: self.prog.push(
                Op::Affine {
                    src: id,
                    scale,
                    shift,
                },
                shape,
            ),
            nchw,
        })
    }

    fn pad(&mut self, node: &NodeProto) -> Result<Val> {
        let (id, nchw) = self.act(node, 0)?;
        let pads = match self.opt_konst(node, 1)? {
            Some(p) => p.i64(),
            None => node.ints("pads"),
        };
        let value = self
            .opt_konst(node, 2)?
            .map(|t| t.f32())
            .unwrap_or_default();
        let mode = node.string("mode", "constant");
        let edge = match mode.as_str() {
            "constant" if value.iter().all(|&v| v == 0.0) => false,
            "edge" => true,
            _ => return Err(unsupported(node, format!("{mode} padding"))),
        };
        // Begins then ends, over the logical axes.
        let (hy, wx) = if nchw { (2, 3) } else { (1, 2) };
        let ok = pads.len() == 8
            && pads.iter().all(|&p| p >= 0)
            && (0..4).all(|a| a == hy || a == wx || (pads[a] == 0 && pads[a + 4] == 0));
        if !ok {
            return Err(unsupported(
                node,
                format!("pads {pads:?} (height and width only)"),
            ));
        }
        let pad = [pads[hy], pads[wx], pads[hy + 4], pads[wx + 4]].map(|p| p as usize);
        let s = &self.prog.shapes[id];
        let shape = vec![s[0], s[1] + pad[0] + pad[2], s[2] + pad[1] + pad[3], s[3]];
        Ok(Val::Act {
            id: self.prog.push(Op::Pad { src: id, pad, edge }, shape),
            nchw,
        })
    }

    /// A window from `kernel_shape`, `strides`, `pads` (rejecting dilation and `auto_pad`).
    fn window(&self, node: &NodeProto, kernel: (usize, usize)) -> Result<Window> {
        let two = |name: &str, default: usize| -> Result<(usize, usize)> {
            match node.ints(name)[..] {
                [] => Ok((default, default)),
                [a, b] if a >= 0 && b >= 0 => Ok((a as usize, b as usize)),
                ref v => Err(unsupported(node, format!("{name} {v:?}"))),
            }
        };
        if two("dilations", 1)? != (1, 1) || node.string("auto_pad", "NOTSET") != "NOTSET" {
            return Err(unsupported(node, "dilation and auto_pad are not supported"));
        }
        let pad = match node.ints("pads")[..] {
            [] => [0; 4],
            [t, l, b, r] if t.min(l).min(b).min(r) >= 0 => [t, l, b, r].map(|p| p as usize),
            ref v => return Err(unsupported(node, format!("pads {v:?}"))),
        };
        Ok(Window {
            kernel,
            stride: two("strides", 1)?,
            pad,
        })
    }

    /// `Conv` on an NCHW view; weights `[o, c, kh, kw]` reordered to `[o, kh·kw·c]`.
    fn conv(&mut self, node: &NodeProto) -> Result<Val> {
        let (id, nchw) = self.act(node, 0)?;
        let wt = self.konst(node, 1)?;
        let s = self.prog.shapes[id].clone();
        let [o, c, kh, kw] = wt.dims[..] else {
            return Err(unsupported(node, format!("weights {:?}", wt.dims)));
        };
        if !nchw || node.int("group", 1) != 1 || c != s[3] {
            return Err(unsupported(
                node,
                format!(
                    "a grouped or mis-shaped convolution of {:?} by {:?}",
                    s, wt.dims
                ),
            ));
        }
        let win = self.window(node, (kh, kw))?;
        let (oh, ow) = win
            .out_size(s[1], s[2])
            .ok_or_else(|| unsupported(node, "the window does not fit the image"))?;
        let src = wt.f32();
        let mut w = vec![0f32; src.len()];
        for oc in 0..o {
            for ch in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        w[((oc * kh + ky) * kw + kx) * c + ch] =
                            src[((oc * c + ch) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        let b = match self.opt_konst(node, 2)? {
            Some(b) if b.len() == o => b.f32(),
            Some(b) => return Err(unsupported(node, format!("bias {:?}", b.dims))),
            None => vec![0.0; o],
        };
        let op = Op::Conv {
            src: id,
            w,
            b,
            out: o,
            win,
            residual: None,
            relu: false,
        };
        Ok(Val::Act {
            id: self.prog.push(op, vec![s[0], oh, ow, o]),
            nchw,
        })
    }

    fn pool(&mut self, node: &NodeProto) -> Result<Val> {
        let (id, nchw) = self.act(node, 0)?;
        let kernel = match node.ints("kernel_shape")[..] {
            [a, b] if a > 0 && b > 0 => (a as usize, b as usize),
            ref k => return Err(unsupported(node, format!("kernel_shape {k:?}"))),
        };
        let pool = match node.op_type.as_str() {
            "MaxPool" => Pool::Max,
            _ => Pool::Avg,
        };
        if !nchw || node.int("ceil_mode", 0) != 0 || node.int("count_include_pad", 0) != 0 {
            return Err(unsupported(
                node,
                "ceil_mode and count_include_pad are not supported",
            ));
        }
        let win = self.window(node, kernel)?;
        let s = self.prog.shapes[id].clone();
        let (oh, ow) = win
            .out_size(s[1], s[2])
            .ok_or_else(|| unsupported(node, "the window does not fit the image"))?;
        Ok(Val::Act {
            id: self
                .prog
                .push(Op::Pool { src: id, win, pool }, vec![s[0], oh, ow, s[3]]),
            nchw,
        })
    }

    /// A mean over height and width (`ReduceMean` over those axes, or
    /// `GlobalAveragePool`); kept dimensions of 1 are dropped.
    fn mean(&mut self, node: &NodeProto) -> Result<Val> {
        let (id, nchw) = self.act(node, 0)?;
        let axes = match (node.op_type.as_str(), self.opt_konst(node, 1)?) {
            ("GlobalAveragePool", _) => vec![2, 3],
            (_, Some(a)) => a.i64(),
            _ => node.ints("axes"),
        };
        let mut axes: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        let spatial: &[i64] = if nchw { &[2, 3] } else { &[1, 2] };
        if axes != spatial || self.prog.shapes[id].len() != 4 {
            return Err(unsupported(node, format!("a mean over axes {axes:?}")));
        }
        let s = &self.prog.shapes[id];
        let shape = vec![s[0], s[3]];
        Ok(Val::Act {
            id: self.prog.push(Op::Mean(id), shape),
            nchw: false,
        })
    }

    /// `MatMul` by a `[k, n]` constant, or `Gemm` (`transB`, bias `C`).
    fn matmul(&mut self, node: &NodeProto) -> Result<Val> {
        let (id, _) = self.act(node, 0)?;
        let wt = self.konst(node, 1)?;
        let s = self.prog.shapes[id].clone();
        let gemm = node.op_type == "Gemm";
        let trans = gemm && node.int("transB", 0) == 1;
        let (k, n) = match wt.dims[..] {
            [a, b] if trans => (b, a),
            [a, b] => (a, b),
            _ => (0, 0),
        };
        let scaled =
            gemm && (node.attr("alpha").is_some_and(|a| a.f != 1.0) || node.int("transA", 0) != 0);
        if s.len() != 2 || s[1] != k || scaled {
            return Err(unsupported(node, format!("{s:?} by {:?}", wt.dims)));
        }
        let v = wt.f32();
        let w: Vec<f32> = if trans {
            v
        } else {
            (0..n)
                .flat_map(|j| (0..k).map(move |i| (i, j)))
                .map(|(i, j)| v[i * n + j])
                .collect()
        };
        let b = match self.opt_konst(node, 2)? {
            Some(c) if c.len() == n => c.f32(),
            Some(c) => return Err(unsupported(node, format!("bias {:?}", c.dims))),
            None => vec![0.0; n],
        };
        Ok(Val::Act {
            id: self.prog.push(
                Op::Linear {
                    src: id,
                    w,
                    b,
                    out: n,
                },
                vec![s[0], n],
            ),
            nchw: false,
        })
    }
}

fn ints(dims: Vec<usize>, v: Vec<i64>) -> Tensor {
    Tensor {
        dims,
        values: Values::I64(v),
    }
}

/// `Cast` of a constant: to float (1) or an integer type.
fn cast(node: &NodeProto, t: Tensor) -> Result<Tensor> {
    Ok(match node.int("to", 1) {
        1 | 10 | 11 | 16 => Tensor {
            values: Values::F32(t.f32()),
            dims: t.dims,
        },
        2..=7 | 12 | 13 => ints(t.dims.clone(), t.i64()),
        to => return Err(unsupported(node, format!("a cast to type {to}"))),
    })
}

fn transpose(node: &NodeProto, t: &Tensor, perm: &[i64]) -> Result<Tensor> {
    let r = t.dims.len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..r).rev().collect()
    } else {
        perm.iter().map(|&p| p as usize).collect()
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..r).collect::<Vec<_>>() {
        return Err(unsupported(
            node,
            format!("permutation {perm:?} of {:?}", t.dims),
        ));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| t.dims[p]).collect();
    let strides: Vec<usize> = (0..r).map(|a| t.dims[a + 1..].iter().product()).collect();
    let index = |flat: usize| {
        let (mut rem, mut src) = (flat, 0);
        for (a, &p) in perm.iter().enumerate() {
            let inner: usize = dims[a + 1..].iter().product();
            src += rem / inner * strides[p];
            rem %= inner;
        }
        src
    };
    let n = t.len();
    let values = match &t.values {
        Values::F32(v) => Values::F32((0..n).map(|i| v[index(i)]).collect()),
        Values::I64(v) => Values::I64((0..n).map(|i| v[index(i)]).collect()),
    };
    Ok(Tensor { dims, values })
}

/// `Slice` of a constant: per axis `starts`, `ends`, `steps` (negative too),
/// clamped as ONNX does.
fn slice(
    node: &NodeProto,
    x: &Tensor,
    [starts, ends, axes, steps]: [Result<Option<Tensor>>; 4],
) -> Result<Tensor> {
    let (starts, ends) = match (starts?, ends?) {
        (Some(s), Some(e)) => (s.i64(), e.i64()),
        _ => return Err(unsupported(node, "starts and ends must be inputs")),
    };
    let r = x.dims.len() as i64;
    let axes: Vec<usize> = match axes? {
        Some(a) => a
            .i64()
            .iter()
            .map(|&a| (if a < 0 { a + r } else { a }) as usize)
            .collect(),
        None => (0..starts.len()).collect(),
    };
    let steps = steps?
        .map(|s| s.i64())
        .unwrap_or_else(|| vec![1; starts.len()]);
    // Per axis, the source indices kept.
    let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for (i, &a) in axes.iter().enumerate() {
        let d = *x
            .dims
            .get(a)
            .ok_or_else(|| unsupported(node, "axis out of range"))? as i64;
        let step = steps[i];
        if step == 0 {
            return Err(unsupported(node, "a zero step"));
        }
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (mut at, end) = if step > 0 {
            (norm(starts[i]).clamp(0, d), norm(ends[i]).clamp(0, d))
        } else {
            (
                norm(starts[i]).clamp(-1, d - 1),
                norm(ends[i]).clamp(-1, d - 1),
            )
        };
        let mut k = Vec::new();
        while (step > 0 && at < end) || (step < 0 && at > end) {
            k.push(at as usize);
            at += step;
        }
        keep[a] = k;
    }
    let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
    let strides: Vec<usize> = (0..x.dims.len())
        .map(|a| x.dims[a + 1..].iter().product())
        .collect();
    let n: usize = dims.iter().product();
    let src = |flat: usize| {
        let (mut rem, mut at) = (flat, 0);
        for a in 0..dims.len() {
            let inner: usize = dims[a + 1..].iter().product();
            at += keep[a][rem / inner] * strides[a];
            rem %= inner;
        }
        at
    };
    let values = match &x.values {
        Values::F32(v) => Values::F32((0..n).map(|i| v[src(i)]).collect()),
        Values::I64(v) => Values::I64((0..n).map(|i| v[src(i)]).collect()),
    };
    Ok(Tensor { dims, values })
}

/// Element-wise arithmetic on constants; one side may be a single value.
fn elementwise(node: &NodeProto, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (n, dims) = match (a.len(), b.len()) {
        (x, y) if x == y => (
            x,
            if a.dims.len() >= b.dims.len() {
                &a.dims
            } else {
                &b.dims
            },
        ),
        (1, y) => (y, &b.dims),
        (x, 1) => (x, &a.dims),
        _ => return Err(unsupported(node, format!("{:?} and {:?}", a.dims, b.dims))),
    };
    let pick = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let op = node.op_type.as_str();
    Ok(match (&a.values, &b.values) {
        (Values::I64(x), Values::I64(y)) => {
            let v = (0..n)
                .map(|i| {
                    let (p, q) = (pick(x, i), pick(y, i));
                    match op {
                        "Add" => Ok(p.wrapping_add(q)),
                        "Sub" => Ok(p.wrapping_sub(q)),
                        "Mul" => Ok(p.wrapping_mul(q)),
                        _ if q == 0 => Err(unsupported(node, "integer division by zero")),
                        _ => Ok(p.div_euclid(q)),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            ints(dims.clone(), v)
        }
        _ => {
            let (x, y) = (a.f32(), b.f32());
            let f = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
            let v = (0..n)
                .map(|i| {
                    let (p, q) = (f(&x, i), f(&y, i));
                    match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        _ => p / q,
                    }
                })
                .collect();
            Tensor {
                dims: dims.clone(),
                values: Values::F32(v),
            }
        }
    })
}
