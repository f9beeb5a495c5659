//! Text functions: rule-based alt-text heuristics (`alt_quality`), word
//! n-grams (`ngrams`) and the aggregate `caption_stats`.

pub(crate) mod alt_quality;
pub(crate) mod caption_stats;
pub(crate) mod ngrams;
