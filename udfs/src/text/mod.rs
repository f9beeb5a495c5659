//! Text functions: rule-based alt-text heuristics (`alt_quality`) and word
//! n-grams (`ngrams`).

pub(crate) mod alt_quality;
pub(crate) mod ngrams;
