//! `fuse(alt, caption [, extra …])`: CapsFusion-style fusion of a web alt text
//! and synthetic caption(s) into one caption by an LLM.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};
use lakecap_models::chat::parse_turns;

use super::function::{Model, ModelFunction};
use super::fusion_judge::{Judge, usable_alt};
use super::llm_call::{at_least, fill, generate, string_columns, strings_signature};
use crate::common::args::{Rows, arrays};
use crate::common::arrow::column;
use crate::common::memo::SessionMemo;

const USAGE: &str = "fuse(alt, caption [, extra …])";

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::LLM,
        "One fluent caption that keeps the facts of a web alt text (names, places, dates) and the \
         visual details of a synthetic caption, written by an LLM (CapsFusion). Extra arguments \
         (more captions, detected tags, OCR text, as in FuseCap) are given to the model as further \
         details. The prompt is udfs/prompts/fuse.txt, overridable with SET lakecap.fuse.prompt; \
         the model and sampling follow lakecap.llm.*. Without a usable alt text (NULL, empty, a \
         file name, boilerplate, an ad or a single word) the caption is returned unchanged; \
         without a caption, the alt text. Both NULL gives NULL. A reply is refused, keeping the \
         caption with a counted warning, when it copies words of the prompt's example that neither \
         input has, adds names or numbers that neither input has, or keeps under a third of the \
         caption's content words.",
        USAGE,
    )
    .with_argument("alt", "The web alt text.")
    .with_argument("caption", "A synthetic caption (e.g. recaption(img)).")
    .with_argument("extra", "Optional further captions, tags or OCR text.")
    .with_sql_example("SELECT key, fuse(alt, caption) AS fused FROM captions;")
    .with_related_udf("llm")
    .with_related_udf("alt_quality")
    .build()
});

pub type FuseFunc = Model<Fuse>;

/// `fuse` under the session's `lakecap.fuse.prompt` and `lakecap.llm.*`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Fuse;

/// The caption in a model reply: its first non-empty line, without quotes or
/// a "Caption:" label.
fn clean(reply: &str) -> String {
    let line = reply
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line = ["Caption:", "caption:", "Fused caption:"]
        .iter()
        .fold(line, |l, p| l.strip_prefix(p).unwrap_or(l))
        .trim();
    line.trim_matches(['"', '\u{201c}', '\u{201d}'])
        .trim()
        .to_string()
}

/// What a row becomes without the model, or `None` when it needs fusing.
fn shortcut(alt: Option<&str>, caption: Option<&str>) -> Option<Option<String>> {
    let (a, c) = (alt.map(str::trim), caption.map(str::trim));
    match (a.filter(|a| !a.is_empty()), c.filter(|c| !c.is_empty())) {
        // Nothing to fuse: NULL stays NULL, an empty string stays empty.
        (None, None) => Some(caption.or(alt).map(str::to_string)),
        (Some(_), None) => Some(alt.map(str::to_string)),
        (None, Some(_)) => Some(caption.map(str::to_string)),
        (Some(a), Some(c)) if !usable_alt(a) || a.eq_ignore_ascii_case(c) => {
            Some(caption.map(str::to_string))
        }
        _ => None,
    }
}

#[async_trait]
impl ModelFunction for Fuse {
    const NAME: &'static str = "fuse";

    fn signature() -> Signature {
        strings_signature()
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        at_least(Self::NAME, USAGE, 2, args.arg_fields.len())?;
        Ok(DataType::Utf8)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let cols = string_columns(&arrays(args)?)?;
        let prompt = rows.options.fuse.prompt.clone();
        let judge = Judge::new(&prompt);
        let n = cols[0].len();
        let mut out: Vec<Option<String>> = vec![None; n];
        let mut convs = vec![None; n];
        for i in 0..n {
            let (alt, cap) = (cols[0][i].as_deref(), cols[1][i].as_deref());
            match shortcut(alt, cap) {
                Some(v) => out[i] = v,
                None => {
                    let extras: Vec<&str> = cols[2..]
                        .iter()
                        .filter_map(|c| c[i].as_deref().map(str::trim))
                        .filter(|e| !e.is_empty())
                        .collect();
                    let extra = if extras.is_empty() {
                        String::new()
                    } else {
                        format!("\nMore details: {}", extras.join("; "))
                    };
                    let (alt, cap) = (alt.unwrap_or("").trim(), cap.unwrap_or("").trim());
                    let text = fill(
                        &prompt,
                        &[("alt", alt), ("caption", cap), ("extra", &extra)],
                    );
                    convs[i] = Some(parse_turns(&text));
                }
            }
        }
        let fused = generate(rows, convs.clone(), &memo.texts).await?;
        for (i, f) in fused.into_iter().enumerate() {
            if convs[i].is_none() {
                continue;
            }
            let caption = cols[1][i].clone();
            let cap = caption.as_deref().unwrap_or("");
            let inputs: Vec<&str> = cols.iter().filter_map(|c| c[i].as_deref()).collect();
            out[i] = match f.map(|r| clean(&r)) {
                Some(c) => match judge.refuse(&c, cap, &inputs) {
                    None => Some(c),
                    Some(why) => {
                        rows.warn(i, why.kind(), &why.message(&c));
                        caption
                    }
                },
                // A row the model could not run (warned already): keep the caption.
                None => caption,
            };
        }
        Ok(column(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_and_cleaning() {
        let cap = "a cat on a mat";
        assert_eq!(shortcut(None, None), Some(None));
        assert_eq!(shortcut(Some(""), None), Some(Some(String::new())));
        assert_eq!(shortcut(None, Some(cap)), Some(Some(cap.into())));
        assert_eq!(shortcut(Some("  "), Some(cap)), Some(Some(cap.into())));
        assert_eq!(
            shortcut(Some("Tabby cat Chelsea, 2009"), None),
            Some(Some("Tabby cat Chelsea, 2009".into()))
        );
        assert_eq!(
            shortcut(Some("IMG_0042.JPG"), Some(cap)),
            Some(Some(cap.into()))
        );
        assert_eq!(
            shortcut(Some("click here to enlarge"), Some(cap)),
            Some(Some(cap.into()))
        );
        assert_eq!(shortcut(Some("texture"), Some(cap)), Some(Some(cap.into())));
        assert_eq!(
            shortcut(Some("A cat on a mat"), Some(cap)),
            Some(Some(cap.into()))
        );
        assert_eq!(shortcut(Some("Tabby cat Chelsea, 2009"), Some(cap)), None);
        assert_eq!(clean("\n  Caption: \"A cat.\"\nmore"), "A cat.");
        assert_eq!(clean("   "), "");
        assert_eq!(
            shortcut(
                Some("https://img.example.org/media/14906e6390288a79.jpg"),
                Some(cap)
            ),
            Some(Some(cap.into()))
        );
    }
}
