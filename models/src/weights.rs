//! Memory-mapped safetensors checkpoints (single file or sharded with
//! `model.safetensors.index.json`), uploaded tensor by tensor to a backend.
//! Weight names are the Hugging Face state-dict names.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use lakecap_kernels::{Backend, HostData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use crate::error::{ModelError, Result};

struct Shard {
    path: PathBuf,
    map: Mmap,
    /// Offset of the data section (after the 8-byte length and the JSON header).
    data_start: usize,
    meta: Metadata,
}

/// Every tensor of a checkpoint, by name.
pub struct Weights {
    shards: Vec<Shard>,
    /// name -> shard index
    index: HashMap<String, usize>,
}

impl Weights {
    /// Opens `dir/model.safetensors` or the shards listed in
    /// `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Weights> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index.exists() {
            let text =
                std::fs::read_to_string(&index).map_err(|e| ModelError::bad_file(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::bad_file(&index, e))?;
            let map = v["weight_map"]
                .as_object()
                .ok_or_else(|| ModelError::bad_file(&index, "no weight_map"))?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|f| f.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            files
        } else {
            return Err(ModelError::bad_file(
                dir,
                "no model.safetensors or model.safetensors.index.json (pickle checkpoints are not loaded)",
            ));
        };
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for path in files {
            let file = File::open(&path).map_err(|e| ModelError::bad_file(&path, e))?;
            // SAFETY: the map is read-only; a checkpoint changed underneath a
            // running process is outside what any loader can defend against.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::bad_file(&path, e))?;
            let (n, meta) = SafeTensors::read_metadata(&map)
                .map_err(|e| ModelError::bad_file(&path, format!("not a safetensors file: {e}")))?;
            for name in meta.tensors().keys() {
                index.insert(name.clone(), shards.len());
            }
            shards.push(Shard {
                path,
                map,
                data_start: 8 + n,
                meta,
            });
        }
        Ok(Weights { shards, index })
    }

    /// Drops the mapped pages of a tensor's `bytes` once the backend holds its
    /// copy, so a loaded model does not also keep its file in memory (a
    /// 3B bf16 checkpoint would otherwise peak at twice its size). The
    /// mapping is read-only and file-backed: a later read faults the pages
    /// in again from the file.
    fn release(&self, bytes: &[u8]) {
        #[cfg(unix)]
        if let Some(shard) = self
            .shards
            .iter()
            .find(|s| s.map.as_ptr_range().contains(&bytes.as_ptr()))
        {
            let map = &shard.map;
            let offset = bytes.as_ptr() as usize - map.as_ptr() as usize;
            // SAFETY: no borrow of these bytes outlives this call, and
            // dropping pages of a read-only file mapping only makes the next
            // read fetch them from the file again.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, bytes.len())
            };
        }
    }

    /// Shape, bytes and dtype of tensor `name`.
    fn raw(&self, name: &str) -> Result<(Vec<usize>, &[u8], Dtype)> {
        let err = |detail: String| ModelError::Weight {
            name: name.to_string(),
            detail,
        };
        let &si = self
            .index
            .get(name)
            .ok_or_else(|| err("missing from the checkpoint".into()))?;
        let shard = &self.shards[si];
        let info = shard.meta.info(name).expect("indexed name");
        let (a, b) = info.data_offsets;
        let bytes = shard
            .map
            .get(shard.data_start + a..shard.data_start + b)
            .ok_or_else(|| err(format!("data past the end of {}", shard.path.display())))?;
        Ok((info.shape.clone(), bytes, info.dtype))
    }

    /// The first prefix (`""` included) under which `name` exists.
    pub fn find_prefix<'a>(&self, candidates: &[&'a str], name: &str) -> Option<&'a str> {
        candidates
            .iter()
            .find(|p| self.contains(&format!("{p}{name}")))
            .copied()
    }
}

/// Where a model's named tensors come from: a safetensors checkpoint
/// ([`Weights`]) or a GGUF file mapped to HF names (`crate::llama::GgufWeights`).
pub trait WeightSource {
    fn contains(&self, name: &str) -> bool;
    /// Tensor `name` in host memory as f32, with its shape (for weights a
    /// model splits or reshapes before uploading).
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)>;
    /// Uploads tensor `name` (an HF state-dict name), checking its shape.
    fn load<B: Backend>(&self, be: &B, name: &str, shape: &[usize]) -> Result<B::Tensor>;
}

impl WeightSource for Weights {
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, bytes, dtype) = self.raw(name)?;
        let v: Vec<f32> = match dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::Weight {
                    name: name.into(),
                    detail: format!("dtype {other:?} is not supported (f32, f16, bf16 are)"),
                });
            }
        };
        Ok((shape, v))
    }

    /// Keeps f16/bf16 storage as the file has it.
    fn load<B: Backend>(&self, be: &B, name: &str, shape: &[usize]) -> Result<B::Tensor> {
        let (got, bytes, dtype) = self.raw(name)?;
        let want: usize = shape.iter().product();
        if got.iter().product::<usize>() != want || (got.len() == shape.len() && got != shape) {
            return Err(ModelError::Weight {
                name: name.into(),
                detail: format!("shape {got:?} in the checkpoint, the config implies {shape:?}"),
            });
        }
        let t = match dtype {
            Dtype::F16 => {
                let v: Vec<f16> = bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect();
                be.upload_weight(shape, HostData::F16(&v))?
            }
            Dtype::BF16 => {
                let v: Vec<bf16> = bytes
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                    .collect();
                be.upload_weight(shape, HostData::BF16(&v))?
            }
            _ => be.upload_weight(shape, HostData::F32(&self.read_f32(name)?.1))?,
        };
        self.release(bytes);
        Ok(t)
    }
}
