//! Object stores created on demand from a URL's scheme, so any statement can
//! name `s3://`, `gs://`, `az://`/`abfs://` or `http(s)://` locations without
//! registering stores first. Credentials and endpoints come from the usual
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...),
//! read by object_store's `from_env` builders.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use url::Url;

/// A registry that builds a store the first time a bucket or host is used.
#[derive(Debug, Default)]
pub struct LakeStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl LakeStoreRegistry {
    pub fn new() -> Self {
        Self::default()
    }
}

fn build(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let host = url.host_str().unwrap_or_default();
    let err = |e: object_store::Error| DataFusionError::External(Box::new(e));
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_bucket_name(host);
            // Plain-http endpoints (MinIO, moto, ...) only need AWS_ENDPOINT_URL to say so.
            if std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .is_ok_and(|e| e.starts_with("http://"))
            {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build().map_err(err)?)
        }
        "gs" | "gcs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(host)
                .build()
                .map_err(err)?,
        ),
        "az" | "abfs" | "abfss" | "adl" | "azure" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(err)?,
        ),
        "http" | "https" => {
            let origin = format!("{}://{}", url.scheme(), url.authority());
            Arc::new(HttpBuilder::new().with_url(origin).build().map_err(err)?)
        }
        other => {
            return Err(DataFusionError::Configuration(format!(
                "no object store for '{other}://' locations: use a local path, s3://, gs://, az://, http:// or https://"
            )));
        }
    };
    Ok(store)
}

impl ObjectStoreRegistry for LakeStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        let store = build(url)?;
        self.inner.register_store(url, Arc::clone(&store));
        Ok(store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_stores_by_scheme_and_caches_them() {
        let reg = LakeStoreRegistry::new();
        let url = Url::parse("https://example.org/lake/part-0.parquet").unwrap();
        let a = reg.get_store(&url).unwrap();
        let b = reg
            .get_store(&Url::parse("https://example.org/other.parquet").unwrap())
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(reg.get_store(&Url::parse("file:///tmp").unwrap()).is_ok());
        let err = reg
            .get_store(&Url::parse("ftp://host/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no object store for 'ftp://'"), "{err}");
    }
}
