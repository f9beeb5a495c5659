//! BERT-style sentence encoders (transformers `BertModel` + sentence-transformers pooling).

pub mod config;
pub mod model;

pub use config::BertConfig;
pub use model::Bert;
