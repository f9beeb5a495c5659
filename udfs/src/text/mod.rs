//! Text functions: rule-based alt-text heuristics (`alt_quality`).

pub(crate) mod alt_quality;
