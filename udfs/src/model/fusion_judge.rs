//! Whether `fuse` may use a model's reply: CapsFusion's point is a caption
//! that adds nothing found in neither input, and small models break it by
//! copying the prompt's worked example ("The Golden Gate Bridge, …") or
//! inventing names. [`Judge`] checks a reply against the row's inputs, in
//! order: words of the prompt's example, then names and numbers, then
//! whether it keeps the caption's visual details.

use std::collections::HashSet;

use lakecap_models::chat::parse_turns;
use lakecap_models::text::alt_quality;

use super::llm_call::fill;

/// Why a reply is refused (the warning kind and its message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Words of the prompt's example found in neither input.
    ExampleLeak(Vec<String>),
    /// Names or numbers found in neither input.
    NovelName(Vec<String>),
    /// Under a third of the caption's content words kept.
    Ungrounded,
}

impl Refusal {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Refusal::ExampleLeak(_) => "fusion_copies_example",
            Refusal::NovelName(_) => "fusion_adds_names",
            Refusal::Ungrounded => "ungrounded_fusion",
        }
    }

    pub(crate) fn message(&self, reply: &str) -> String {
        match self {
            Refusal::ExampleLeak(w) => format!(
                "the model's reply {reply:?} copies the prompt's example ({}); the caption is kept",
                w.join(", ")
            ),
            Refusal::NovelName(w) => format!(
                "the model's reply {reply:?} adds names or numbers found in neither input ({}); the caption is kept",
                w.join(", ")
            ),
            Refusal::Ungrounded => format!(
                "the model's reply {reply:?} keeps too little of the caption; the caption is kept"
            ),
        }
    }
}

/// A word as compared: lower case, a plural's `s` dropped.
fn norm(w: &str) -> String {
    let w = w.to_lowercase();
    match w.strip_suffix('s') {
        Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_string(),
        _ => w,
    }
}

/// The words of `s` (alphanumeric runs), as written.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Words that carry no content of their own (a reply may add these freely).
const FUNCTION_WORDS: &[&str] = &[
    "the", "and", "but", "for", "nor", "with", "from", "into", "onto", "over", "under", "upon",
    "its", "are", "was", "were", "this", "that", "these", "those", "has", "have", "had", "his",
    "her", "their", "our", "your", "who", "which", "where", "while", "when", "than", "then",
    "there", "here", "not", "also", "out", "off", "near", "above", "below", "across", "along",
    "around", "behind", "between", "some", "each", "all", "any", "very", "just", "such",
];

/// Content words: three characters or more (no function word), or any number.
fn content(s: &str) -> HashSet<String> {
    tokens(s)
        .filter(|w| w.chars().count() >= 3 || w.chars().all(|c| c.is_ascii_digit()))
        .map(norm)
        .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()))
        .collect()
}

/// Whether an alt text carries facts worth fusing: two words or more once
/// URLs are set aside, and no file name, boilerplate or ad.
pub(crate) fn usable_alt(alt: &str) -> bool {
    let words: Vec<&str> = alt
        .split_whitespace()
        .filter(|t| !(t.contains("://") || t.starts_with("www.") || t.contains(".com/")))
        .collect();
    let q = alt_quality(&words.join(" "));
    q.words >= 2 && !q.is_filename && !q.is_boilerplate && !q.is_ad
}

/// A fusion prompt's worked examples, as words to watch for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Judge {
    example: HashSet<String>,
}

impl Judge {
    /// From a `lakecap.fuse.prompt` template: the words of its example turns
    /// (every turn but the system's and the row's own), less the words of
    /// the row's turn template (its labels, such as "Alt text").
    pub(crate) fn new(prompt: &str) -> Judge {
        let turns = parse_turns(&fill(
            prompt,
            &[("alt", ""), ("caption", ""), ("extra", "")],
        ));
        let labels = turns
            .last()
            .map(|t| content(&t.content))
            .unwrap_or_default();
        let example = turns[..turns.len().saturating_sub(1)]
            .iter()
            .filter(|t| t.role != "system")
            .flat_map(|t| content(&t.content))
            .filter(|w| !labels.contains(w))
            .collect();
        Judge { example }
    }

    /// Why `reply` may not replace `caption`, given the row's inputs
    /// (`alt`, `caption`, extras), or `None` when it may.
    pub(crate) fn refuse(&self, reply: &str, caption: &str, inputs: &[&str]) -> Option<Refusal> {
        let known: HashSet<String> = inputs.iter().flat_map(|s| content(s)).collect();
        let novel = |w: &String| !known.contains(w);
        let mut leaked: Vec<String> = content(reply)
            .into_iter()
            .filter(|w| novel(w) && self.example.contains(w))
            .collect();
        if !leaked.is_empty() {
            leaked.sort();
            return Some(Refusal::ExampleLeak(leaked));
        }
        let mut names: Vec<String> = Vec::new();
        for sentence in reply.split(['.', '!', '?', ';', ':']) {
            // A sentence's first word is capitalised anyway.
            for w in tokens(sentence).skip(1) {
                let name = w.chars().next().is_some_and(char::is_uppercase)
                    || w.chars().any(|c| c.is_ascii_digit());
                if name && novel(&norm(w)) && !names.iter().any(|n| n == w) {
                    names.push(w.to_string());
                }
            }
        }
        if !names.is_empty() {
            return Some(Refusal::NovelName(names));
        }
        (!grounded(reply, caption)).then_some(Refusal::Ungrounded)
    }
}

/// Whether a fused caption keeps at least a third of the caption's content
/// words of four letters or more (the visual details a fusion exists to keep).
fn grounded(fused: &str, caption: &str) -> bool {
    let words = |s: &str| -> HashSet<String> {
        tokens(s)
            .filter(|w| w.chars().count() > 3)
            .map(str::to_lowercase)
            .collect()
    };
    let (f, c) = (words(fused), words(caption));
    !f.is_empty() && 3 * c.intersection(&f).count() >= c.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = include_str!("../../prompts/fuse.txt");

    #[test]
    fn the_prompt_s_example_is_watched_but_not_its_labels() {
        let j = Judge::new(PROMPT);
        for w in [
            "golden",
            "gate",
            "bridge",
            "sunset",
            "june",
            "2019",
            "suspension",
        ] {
            assert!(j.example.contains(w), "{w}: {:?}", j.example);
        }
        for w in ["alt", "text", "description", "merge"] {
            assert!(!j.example.contains(w), "{w}");
        }
    }

    #[test]
    fn replies_that_copy_the_example_or_invent_names_are_refused() {
        let j = Judge::new(PROMPT);
        let (alt, cap) = (
            "Buy now - 50% off all prints!",
            "a yellow square on a red background",
        );
        // Seen on the sample lake with SmolLM2-135M.
        let r = j.refuse(
            "The Golden Gate Bridge, a yellow triangle and a yellow square on a orange background.",
            cap,
            &[alt, cap],
        );
        let leaked = ["bridge", "gate", "golden", "orange"]
            .map(String::from)
            .to_vec();
        assert_eq!(r, Some(Refusal::ExampleLeak(leaked)));
        // A word of the example that an input has is fine.
        let (alt, cap) = (
            "Bay Bridge at night",
            "a long bridge lit up over dark water",
        );
        assert_eq!(
            j.refuse(
                "The Bay Bridge, a long bridge lit up over dark water at night.",
                cap,
                &[alt, cap]
            ),
            None
        );
        // Names and numbers from nowhere.
        let (alt, cap) = (
            "Tabby cat on the sofa",
            "a striped cat lying on a grey sofa",
        );
        assert_eq!(
            j.refuse(
                "A striped tabby cat named Chelsea lying on a grey sofa in 2009.",
                cap,
                &[alt, cap]
            ),
            Some(Refusal::NovelName(vec!["Chelsea".into(), "2009".into()]))
        );
        assert_eq!(
            j.refuse("Striped tabby cat lying on a grey sofa.", cap, &[alt, cap]),
            None
        );
        // Too little of the caption.
        assert_eq!(
            j.refuse("A tabby cat on the sofa.", cap, &[alt, cap]),
            Some(Refusal::Ungrounded)
        );
        assert!(!grounded("", "a cat"));
    }

    #[test]
    fn url_and_file_name_alt_texts_are_not_fused() {
        for alt in [
            "https://img.example.org/media/14906e6390288a79.jpg",
            "www.example.com/p/123",
            "IMG_0042.JPG",
            "click here to enlarge",
            "texture",
        ] {
            assert!(!usable_alt(alt), "{alt}");
        }
        for alt in [
            "Tabby cat Chelsea, 2009",
            "Moon over https://x.org/a Lisbon harbour",
        ] {
            assert!(usable_alt(alt), "{alt}");
        }
    }
}
