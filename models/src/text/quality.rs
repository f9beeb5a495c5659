//! Alt-text quality features and score.
//!
//! The rules condense what the large curation efforts applied before (or
//! beside) CLIP filtering:
//! - LAION-5B (Schuhmann et al. 2022): drop alt texts under 5 characters;
//!   frequent junk is file names, URLs and generic words.
//! - DataComp "basic filtering" (Gadre et al. 2023): captions need more than
//!   2 words and more than 5 characters, and are language-identified.
//! - CapsFusion / VeCLIP / "Revisit large-scale image-caption data": web alt
//!   texts are often boilerplate, ads or SEO keyword lists; those are the rows
//!   recaptioning must replace rather than fuse.
//!
//! The score starts at 1 and is multiplied down per defect (see [`alt_quality`]);
//! every feature is returned too, so recipes can filter on what they care about.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

/// Features of one alt text and a [0, 1] score (higher is more caption-like).
#[derive(Debug, Clone, PartialEq)]
pub struct AltQuality {
    pub chars: u32,
    pub words: u32,
    /// The whole text is a file name or camera counter (`IMG_0042.JPG`, `DSC01234`).
    pub is_filename: bool,
    /// Contains a URL or bare domain.
    pub has_url: bool,
    /// Generic placeholder text ("image", "click here to enlarge", "untitled").
    pub is_boilerplate: bool,
    /// Advertising or SEO phrasing ("buy now", "free download", "visit ... today").
    pub is_ad: bool,
    /// Share of word tokens that repeat an earlier token (0 = all distinct).
    pub repetition: f32,
    /// ISO 639-3 code when the language is identified reliably (whatlang).
    pub lang: Option<&'static str>,
    /// whatlang's best guess however unsure (a top-1 language, as DataComp's
    /// fastText filter takes it); `None` only for text with no letters.
    pub lang_guess: Option<&'static str>,
    pub score: f32,
}

static FILENAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*(
            [\w\-. ]{0,80}\.(jpe?g|png|gif|webp|bmp|tiff?|heic|svg|avif)   # name.ext
          | (img|dsc|dscn|dscf|pxl|p|photo|image|screenshot)[\s_\-]?\d{2,}[\w\-]*  # camera counters
          | [0-9a-f]{16,}                                                 # content hashes
          | \d{6,}                                                        # bare ids
        )\s*$",
    )
    .expect("valid regex")
});

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(https?://|www\.|\b[a-z0-9\-]+\.(com|net|org|io|co|de|uk|ru|jp|cn|info|biz)\b)",
    )
    .expect("valid regex")
});

static AD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)\b(
            buy(\s+now)? | sale | discount | \d+\s?%\s?off | free\s+shipping | order\s+now | shop\s+now
          | best\s+\w+\s+in\s+town | visit\s+.+\s+today | free\s+download | download\s+free
          | wallpapers?\s*(4k|hd)? | cheap | coupon | promo | sponsored | advertisement | subscribe
          | click\s+here | lowest\s+price | limited\s+offer | call\s+now
        )\b",
    )
    .expect("valid regex")
});

/// Whole-text placeholders seen again and again in web crawls.
const BOILERPLATE: &[&str] = &[
    "image",
    "images",
    "photo",
    "photos",
    "picture",
    "pic",
    "img",
    "untitled",
    "thumbnail",
    "thumb",
    "placeholder",
    "no image",
    "no image available",
    "image not found",
    "default",
    "logo",
    "icon",
    "banner",
    "texture",
    "background",
    "blurry",
    "stock photo",
    "click here to enlarge",
    "click to enlarge",
    "enlarge",
    "view image",
    "image may contain",
    "alt",
    "alt text",
    "null",
    "none",
    "n/a",
    "spacer",
    "blank",
    "header",
    "footer",
    "avatar",
    "profile picture",
    "clipart",
];

/// Computes the features and the score of one alt text.
///
/// Score: 1.0, times 0.05 for a file name, 0.1 for boilerplate, 0.2 for an ad,
/// 0.3 for a URL, 0.5 for 2 words or fewer (DataComp) and 0.5 more under 5
/// characters (LAION), and (1 - repetition) when over a third of words repeat.
/// Empty text scores 0.
pub fn alt_quality(text: &str) -> AltQuality {
    let trimmed = text.trim();
    let chars = trimmed.chars().count() as u32;
    let tokens: Vec<String> = trimmed
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    let words = tokens.len() as u32;
    let distinct = tokens.iter().collect::<HashSet<_>>().len();
    let repetition = if tokens.is_empty() {
        0.0
    } else {
        1.0 - distinct as f32 / tokens.len() as f32
    };
    let normalised = tokens.join(" ");
    let is_filename = !trimmed.is_empty() && FILENAME.is_match(trimmed);
    let has_url = URL.is_match(trimmed);
    let is_boilerplate = !normalised.is_empty()
        && (BOILERPLATE.contains(&normalised.as_str())
            || normalised.starts_with("image may contain"));
    let is_ad = AD.is_match(trimmed);
    let detected = whatlang::detect(trimmed);
    let lang_guess = detected.as_ref().map(|i| i.lang().code());
    let lang = detected
        .filter(|i| i.is_reliable())
        .map(|i| i.lang().code());

    let mut score: f32 = if chars == 0 { 0.0 } else { 1.0 };
    for (defect, factor) in [
        (is_filename, 0.05),
        (is_boilerplate, 0.1),
        (is_ad, 0.2),
        (has_url, 0.3),
        (words <= 2, 0.5),
        (chars < 5, 0.5),
    ] {
        if defect {
            score *= factor;
        }
    }
    if repetition > 1.0 / 3.0 {
        score *= 1.0 - repetition;
    }
    AltQuality {
        chars,
        words,
        is_filename,
        has_url,
        is_boilerplate,
        is_ad,
        repetition,
        lang,
        lang_guess,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_caption_scores_high() {
        let q = alt_quality(
            "a smiling astronaut in an orange flight suit poses in front of an American flag",
        );
        assert!(!q.is_filename && !q.has_url && !q.is_boilerplate && !q.is_ad);
        assert_eq!(q.words, 15);
        assert_eq!(q.lang, Some("eng"));
        assert!(q.score > 0.99, "{q:?}");
    }

    #[test]
    fn web_junk_is_flagged() {
        for name in [
            "IMG_0042.JPG",
            "chelsea.png",
            "DSC01234",
            "Corner.png",
            "3f2a9c0d1e4b5a6f7788",
        ] {
            let q = alt_quality(name);
            assert!(q.is_filename, "{name}");
            assert!(q.score <= 0.05, "{name}: {q:?}");
        }
        assert!(alt_quality("click here to enlarge").is_boilerplate);
        assert!(alt_quality("texture").is_boilerplate);
        let ad = alt_quality("Best espresso in town! Visit Pikolo Espresso Bar today");
        assert!(ad.is_ad && ad.score < 0.25, "{ad:?}");
        assert!(alt_quality("Hubble eXtreme Deep Field XDF 2012 wallpaper 4k free download").is_ad);
        assert!(alt_quality("see www.example.com for more").has_url);
        assert!(alt_quality("photo at https://x.io/a.jpg").has_url);
    }

    #[test]
    fn short_and_repetitive_text_is_penalised() {
        assert_eq!(alt_quality("").score, 0.0);
        assert_eq!(alt_quality("   ").chars, 0);
        let moon = alt_quality("moon");
        assert!((moon.score - 0.25).abs() < 1e-6, "{moon:?}");
        let rep = alt_quality("cat cat cat cat cat cat");
        assert!(rep.repetition > 0.8, "{rep:?}");
        assert!((rep.score - (1.0 - rep.repetition)).abs() < 1e-6, "{rep:?}");
    }
}
