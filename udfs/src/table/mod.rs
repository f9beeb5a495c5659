//! Table functions: deduplication verdicts over a registered table's
//! columns, `near_duplicates` (64-bit hashes) and `semantic_duplicates`
//! (embeddings), sharing `table_args`.

pub(crate) mod near_duplicates;
pub(crate) mod semantic_duplicates;
pub(crate) mod table_args;
