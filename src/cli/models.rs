//! `lakecap models list` and `lakecap models pull`.

use anyhow::{Context, Result, bail};
use lakecap_models::{home, hub};
use object_store::ObjectStoreExt;
use object_store::http::HttpBuilder;
use object_store::path::Path as StorePath;

pub fn list() -> Result<()> {
    let found = hub::list();
    if found.is_empty() {
        println!(
            "no models in {} or {} (run scripts/fetch-models.sh, or `lakecap models pull ORG/NAME` with internet)",
            home::models_home().display(),
            hub::hf_hub_cache().display()
        );
    }
    for m in found {
        println!(
            "{:<50} {:<10} {:<9} {}",
            m.id,
            m.model_type,
            m.source,
            m.path.display()
        );
    }
    Ok(())
}

/// Files of the Hugging Face layout that lakecap reads, besides the weights.
const FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "generation_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

pub async fn pull(id: &str) -> Result<()> {
    if id.split('/').count() != 2 || id.contains("..") {
        bail!("model ids look like ORG/NAME, got `{id}`");
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let store = HttpBuilder::new().with_url(&endpoint).build()?;
    let dest = home::models_home().join(id);
    let get = |file: String| {
        let store = &store;
        async move {
            let path = StorePath::from(format!("{id}/resolve/main/{file}"));
            store.get(&path).await?.bytes().await
        }
    };
    let config = get("config.json".into()).await.with_context(|| {
        format!(
            "cannot download {id} from {endpoint} (no internet here? put the files in {} instead)",
            dest.display()
        )
    })?;
    std::fs::create_dir_all(&dest)?;
    std::fs::write(dest.join("config.json"), &config)?;
    let mut weights = vec!["model.safetensors".to_string()];
    if let Ok(index) = get("model.safetensors.index.json".into()).await {
        let v: serde_json::Value = serde_json::from_slice(&index)?;
        let mut shards: Vec<String> = v["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        std::fs::write(dest.join("model.safetensors.index.json"), &index)?;
        weights = shards;
    }
    for file in FILES
        .iter()
        .skip(1)
        .map(|f| f.to_string())
        .chain(weights.iter().cloned())
    {
        match get(file.clone()).await {
            Ok(bytes) => {
                let out = dest.join(&file);
                std::fs::create_dir_all(out.parent().expect("a file in dest"))?;
                std::fs::write(&out, &bytes)?;
                eprintln!("{id}: {file} ({} bytes)", bytes.len());
            }
            Err(_) if !file.ends_with(".safetensors") => {}
            Err(e) => bail!(
                "{id}: {file}: {e} (safetensors weights are required; pickle is never loaded)"
            ),
        }
    }
    println!("{id} -> {}", dest.display());
    Ok(())
}
