//! Documentation sections shared by the functions' structured docs.

use datafusion::logical_expr::DocSection;

pub(crate) const IMAGE: DocSection = DocSection {
    include: true,
    label: "lakecap image functions",
    description: Some("Decode-safe image inspection and hashing"),
};
pub(crate) const TEXT: DocSection = DocSection {
    include: true,
    label: "lakecap text functions",
    description: Some("Alt-text and caption heuristics"),
};
pub(crate) const MODEL: DocSection = DocSection {
    include: true,
    label: "lakecap model functions",
    description: Some(
        "Embeddings and scores from CLIP and sentence encoders, batched across partitions",
    ),
};
pub(crate) const LLM: DocSection = DocSection {
    include: true,
    label: "lakecap generation functions",
    description: Some(
        "Caption fusion and free-form generation with a Llama-family LLM, batched continuously",
    ),
};
/// Functions lakecap adds to plans by itself; not listed.
pub(crate) const INTERNAL: DocSection = DocSection {
    include: false,
    label: "lakecap internals",
    description: None,
};
