//! A reader for ONNX model files: the messages of `onnx.proto` that a
//! feed-forward graph needs (model, graph, node, attribute, tensor, value
//! info), decoded with `prost` under onnx.proto's field numbers, and
//! [`Tensor`], an initializer or constant as f32 or i64 values.
//!
//! Fields lakecap does not read are skipped by the decoder. External tensor
//! data (weights in side files) and types other than float, double and the
//! integers are refused with the tensor's name.

use std::path::Path;

use prost::Message;

use crate::error::{ModelError, Result};

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetId>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetId {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    pub domain: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`'s tensor case (the other cases of its oneof are not read).
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorType>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorType {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<ShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// A dimension: a size, or a symbolic name (`batch`), which reads as `None`.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

impl ValueInfo {
    /// The declared shape, symbolic dimensions as `None`.
    pub fn dims(&self) -> Vec<Option<usize>> {
        let shape = self.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        shape
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads and decodes an `.onnx` file.
pub fn read(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::bad_file(path, e))?;
    ModelProto::decode(bytes.as_slice())
        .map_err(|e| ModelError::bad_file(path, format!("not an ONNX model: {e}")))
}

/// Values of a tensor: floats as f32, integers as i64.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor (an initializer, a `Constant` node, or a value folded
/// from them), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub values: Values,
}

/// ONNX `TensorProto.DataType` numbers.
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

impl Tensor {
    /// The values of `t`, from `raw_data` (little-endian) or the typed fields.
    pub fn from_proto(t: &TensorProto) -> Result<Tensor> {
        let bad = |why: &str| ModelError::Weight {
            name: t.name.clone(),
            detail: why.to_string(),
        };
        if t.data_location == 1 {
            return Err(bad("external data files are not supported"));
        }
        let dims = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| bad("negative dimension")))
            .collect::<Result<Vec<_>>>()?;
        let raw = &t.raw_data;
        let values = match t.data_type {
            FLOAT if !raw.is_empty() => Values::F32(le(raw, f32::from_le_bytes)),
            FLOAT => Values::F32(t.float_data.clone()),
            DOUBLE if !raw.is_empty() => Values::F32(le(raw, |b| f64::from_le_bytes(b) as f32)),
            DOUBLE => Values::F32(t.double_data.iter().map(|&v| v as f32).collect()),
            INT64 if !raw.is_empty() => Values::I64(le(raw, i64::from_le_bytes)),
            INT64 => Values::I64(t.int64_data.clone()),
            INT32 if !raw.is_empty() => Values::I64(le(raw, |b| i32::from_le_bytes(b).into())),
            INT32 => Values::I64(t.int32_data.iter().map(|&v| v.into()).collect()),
            other => return Err(bad(&format!("data type {other} is not supported"))),
        };
        let tensor = Tensor { dims, values };
        if tensor.len() != tensor.dims.iter().product::<usize>() {
            return Err(bad(&format!(
                "{} values for dimensions {:?}",
                tensor.len(),
                tensor.dims
            )));
        }
        Ok(tensor)
    }

    pub fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32.
    pub fn f32(&self) -> Vec<f32> {
        match &self.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as i64 (floats truncated, as ONNX `Cast` does).
    pub fn i64(&self) -> Vec<i64> {
        match &self.values {
            Values::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Values::I64(v) => v.clone(),
        }
    }
}

/// Little-endian values of `N` bytes each (a trailing partial value is dropped
/// and then caught by the length check).
fn le<const N: usize, T>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact")))
        .collect()
}

impl NodeProto {
    /// The attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    /// An integer-list attribute (empty when absent).
    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.attr(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    /// A string attribute, or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }
}
