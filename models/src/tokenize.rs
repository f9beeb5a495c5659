//! `tokenizer.json` through the `tokenizers` crate (the library behind
//! transformers' fast tokenizers), with lakecap's truncation and no padding:
//! models pad batches themselves.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};

pub struct TextTokenizer {
    inner: Tokenizer,
}

/// Loads a `tokenizer.json` with its padding and truncation settings off:
/// a file saved for batched training (sentence-transformers' pad every text
/// to 128) would otherwise prefix every caption or chat prompt with pad
/// tokens, which changes the output and costs a 128-token prefill per row.
pub fn load_plain(path: &Path) -> Result<Tokenizer> {
    let mut t = Tokenizer::from_file(path).map_err(|e| ModelError::bad_file(path, e))?;
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(t)
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json`, truncating to `max_len` tokens (special tokens included).
    pub fn load(dir: &Path, max_len: usize) -> Result<TextTokenizer> {
        let mut inner = load_plain(&dir.join("tokenizer.json"))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer { inner })
    }

    /// Token ids of each text, special tokens added.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// Right-pads id rows to one length with `pad`; returns the flat ids, the
/// padded length and each row's true length.
pub fn pad_batch(rows: &[Vec<u32>], pad: u32) -> (Vec<u32>, usize, Vec<usize>) {
    let s = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut flat = Vec::with_capacity(rows.len() * s);
    for r in rows {
        flat.extend_from_slice(r);
        flat.extend(std::iter::repeat_n(pad, s - r.len()));
    }
    (flat, s, rows.iter().map(Vec::len).collect())
}
