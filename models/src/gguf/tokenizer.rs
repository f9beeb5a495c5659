//! A `tokenizers` tokenizer rebuilt from GGUF metadata (`tokenizer.ggml.*`),
//! equal to the Hugging Face `tokenizer.json` the file was converted from.
//!
//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the pre-tokenizers
//! llama.cpp names in `tokenizer.ggml.pre` (llama.cpp `llama-vocab.cpp`):
//! `default`/`gpt2` (GPT-2 regex), `smollm` (single digits, then GPT-2),
//! `qwen2` and `llama-bpe` (their split regexes). Control tokens become special
//! added tokens, so chat markers such as `<|im_start|>` are never split.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::{Gguf, Value};
use crate::error::{ModelError, Result};

const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn strings(g: &Gguf, key: &str) -> Result<Vec<String>> {
    g.get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
        .ok_or_else(|| ModelError::Tokenizer(format!("GGUF has no string array `{key}`")))
}

fn regex_then_bytes(pattern: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(pattern.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])
    .into())
}

/// Builds the tokenizer of a GGUF file.
pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
    let model = g.str("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(ModelError::Unsupported(format!(
            "GGUF tokenizer model `{model}`: only byte-level BPE (`gpt2`) is rebuilt from GGUF; \
             put the model's tokenizer.json beside the .gguf file"
        )));
    }
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let merges = strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<u64> = g
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
        .unwrap_or_default();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| ModelError::Tokenizer(format!("bad merge `{m}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let pre: PreTokenizerWrapper = match g.str("tokenizer.ggml.pre").unwrap_or("default") {
        "default" | "gpt2" => ByteLevel::new(false, true, true).into(),
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "qwen2" => regex_then_bytes(QWEN2)?,
        "llama-bpe" | "llama3" => regex_then_bytes(LLAMA3)?,
        other => {
            return Err(ModelError::Unsupported(format!(
                "GGUF pre-tokenizer `{other}`: put the model's tokenizer.json beside the .gguf file"
            )));
        }
    };
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // token_type: 3 control, 4 user-defined (llama.cpp `llama_token_type`).
    let added: Vec<AddedToken> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == 3 || **t == 4)
        .map(|(i, t)| AddedToken::from(tokens[i].clone(), *t == 3))
        .collect();
    tok.add_special_tokens(added)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(tok)
}
