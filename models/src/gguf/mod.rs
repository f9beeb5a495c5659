//! GGUF v2/v3, llama.cpp's model file: a typed metadata map, a tensor
//! directory and the tensor data (memory-mapped; block-quantised tensors are
//! handed to the backend as they are stored, see [`quant`]).
//!
//! - [`Gguf::open`] reads and bounds-checks the header of an untrusted file:
//!   every length is checked against the file size before anything is
//!   allocated, so a corrupt or truncated file is an error, never a panic.
//! - [`quant`] (from `lakecap-kernels`): the GGML block formats and their
//!   dequantisation.
//! - [`tokenizer`]: a `tokenizers` tokenizer rebuilt from `tokenizer.ggml.*`.
//!
//! Reference: the GGUF specification (ggml `docs/gguf.md`) and gguf-py.

pub mod tokenizer;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{ModelError, Result};
pub use lakecap_kernels::quant::{self, GgmlType};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::UInt(v) => Some(*v as f64),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Row-major shape (GGUF lists dimensions fastest first; this is reversed,
    /// so it equals the PyTorch shape).
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    /// Byte range in the file.
    pub start: usize,
    pub len: usize,
}

pub struct Gguf {
    pub path: PathBuf,
    map: Mmap,
    pub version: u32,
    pub meta: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
}

/// A bounds-checked little-endian reader over the mapped file.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at byte {} (needs {n} more)", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// A count of items of at least `min_size` bytes each, checked against
    /// what is left of the file.
    fn count(&mut self, min_size: usize) -> std::result::Result<usize, String> {
        let n = self.u64()?;
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(format!(
                "count {n} at byte {} exceeds the file",
                self.at - 8
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.count(1)?;
        let at = self.at;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| format!("invalid UTF-8 in a string at byte {at}"))
    }

    fn value(&mut self, ty: u32, depth: usize) -> std::result::Result<Value, String> {
        let fixed = |r: &mut Self, n: usize| r.take(n).map(|s| s.to_vec());
        Ok(match ty {
            0 => Value::UInt(fixed(self, 1)?[0] as u64),
            1 => Value::Int(fixed(self, 1)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(fixed(self, 2)?.try_into().expect("2")) as u64),
            3 => Value::Int(i16::from_le_bytes(fixed(self, 2)?.try_into().expect("2")) as i64),
            4 => Value::UInt(self.u32()? as u64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_le_bytes(fixed(self, 4)?.try_into().expect("4")) as f64),
            7 => Value::Bool(fixed(self, 1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let inner = self.u32()?;
                let n = self.count(1)?;
                let mut v = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    v.push(self.value(inner, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::UInt(self.u64()?),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_le_bytes(fixed(self, 8)?.try_into().expect("8"))),
            other => return Err(format!("unknown metadata type {other} at byte {}", self.at)),
        })
    }
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Gguf> {
        let file = File::open(path).map_err(|e| ModelError::bad_file(path, e))?;
        // SAFETY: read-only map; see `Weights::open`.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::bad_file(path, e))?;
        let (version, meta, tensors) =
            Self::parse(&map).map_err(|e| ModelError::bad_file(path, format!("GGUF: {e}")))?;
        Ok(Gguf {
            path: path.to_path_buf(),
            map,
            version,
            meta,
            tensors,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse(
        b: &[u8],
    ) -> std::result::Result<(u32, BTreeMap<String, Value>, BTreeMap<String, TensorInfo>), String>
    {
        let mut r = Reader { b, at: 0 };
        if r.take(4)? != b"GGUF" {
            return Err("not a GGUF file (bad magic)".into());
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("version {version} is not supported (2 and 3 are)"));
        }
        let n_tensors = r.count(24)?;
        let n_kv = r.count(12)?;
        let mut meta = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r
                .value(ty, 0)
                .map_err(|e| format!("metadata `{key}`: {e}"))?;
            meta.insert(key, v);
        }
        let mut dir = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let nd = r.u32()? as usize;
            if nd == 0 || nd > 4 {
                return Err(format!("tensor `{name}` has {nd} dimensions"));
            }
            let mut shape = Vec::with_capacity(nd);
            for _ in 0..nd {
                shape.push(r.u64()? as usize);
            }
            shape.reverse();
            let ty_id = r.u32()?;
            let ty = GgmlType::from_id(ty_id)
                .ok_or_else(|| format!("tensor `{name}` has unsupported GGML type {ty_id}"))?;
            let offset = r.u64()? as usize;
            dir.push((name, shape, ty, offset));
        }
        let align = meta
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32)
            .max(1) as usize;
        let data = r.at.div_ceil(align) * align;
        let mut tensors = BTreeMap::new();
        for (name, shape, ty, offset) in dir {
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| format!("tensor `{name}`: shape {shape:?} overflows"))?;
            let len = ty.bytes_for(n).ok_or_else(|| {
                format!("tensor `{name}`: {n} values are not whole {ty:?} blocks")
            })?;
            let start = data
                .checked_add(offset)
                .filter(|s| s.checked_add(len).is_some_and(|e| e <= b.len()))
                .ok_or_else(|| format!("tensor `{name}` lies outside the file"))?;
            tensors.insert(
                name,
                TensorInfo {
                    shape,
                    ty,
                    start,
                    len,
                },
            );
        }
        Ok((version, meta, tensors))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// A metadata key that must be present.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.u64(key)
            .ok_or_else(|| ModelError::bad_file(&self.path, format!("GGUF: missing `{key}`")))
    }

    /// Tensor `name` as stored: its directory entry and bytes.
    pub fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let t = self.tensors.get(name).ok_or_else(|| ModelError::Weight {
            name: name.into(),
            detail: format!("not in {}", self.path.display()),
        })?;
        Ok((t, &self.map[t.start..t.start + t.len]))
    }

    /// Drops the mapped pages of tensor `name` once a backend holds its copy,
    /// so a loaded model does not also keep its file in memory (as
    /// `Weights` does for safetensors). The mapping is read-only and
    /// file-backed: a later read faults the pages in again from the file.
    pub fn release(&self, name: &str) {
        #[cfg(unix)]
        if let Some(t) = self.tensors.get(name) {
            // SAFETY: no borrow of these bytes outlives the caller's copy, and
            // dropping pages of a read-only file mapping only makes the next
            // read fetch them again.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, t.start, t.len)
            };
        }
    }

    /// Tensor `name` dequantised to f32, with its row-major shape.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (t, bytes) = self.tensor_bytes(name)?;
        let n = t.shape.iter().product();
        Ok((t.shape.clone(), quant::dequantize(t.ty, bytes, n)))
    }
}
