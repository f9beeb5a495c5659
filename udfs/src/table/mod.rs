//! Table functions over a registered table's columns: deduplication
//! verdicts, `near_duplicates` (64-bit hashes) and `semantic_duplicates`
//! (embeddings), `kmeans` clusters of embeddings and `knn` nearest
//! neighbours between two embedding columns, sharing `table_args`.

pub(crate) mod kmeans;
pub(crate) mod knn;
pub(crate) mod near_duplicates;
pub(crate) mod semantic_duplicates;
pub(crate) mod table_args;
