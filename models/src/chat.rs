//! Chat templates: the Jinja source from GGUF `tokenizer.chat_template` or
//! `tokenizer_config.json`, rendered with minijinja and its Python-compatible
//! string and dict methods (`.strip()`, `.items()`, …), as transformers'
//! `apply_chat_template` renders them.

use minijinja::{Environment, Error, ErrorKind, context};

use crate::error::{ModelError, Result};

pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

/// One chat turn.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Parses a prompt file: `[system]`, `[user]` and `[assistant]` lines open
/// turns (few-shot examples are user/assistant pairs); text before any marker,
/// or a text without markers, is a user turn. Surrounding blank lines of each
/// turn are dropped.
pub fn parse_turns(text: &str) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut role = "user";
    let mut buf: Vec<&str> = Vec::new();
    let flush = |role: &str, buf: &mut Vec<&str>, out: &mut Vec<Message>| {
        let body = buf.join("\n").trim().to_string();
        if !body.is_empty() {
            out.push(Message::new(role, &body));
        }
        buf.clear();
    };
    for line in text.lines() {
        match line.trim() {
            "[system]" | "[user]" | "[assistant]" => {
                flush(role, &mut buf, &mut out);
                role = line.trim().trim_matches(['[', ']']);
            }
            _ => buf.push(line),
        }
    }
    flush(role, &mut buf, &mut out);
    out
}

/// `source` without transformers' `{% generation %}` … `{% endgeneration %}`
/// tags (its own Jinja extension, marking assistant text for training
/// masks; the body renders as it is).
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let Some(len) = rest[open..].find("%}") else {
            break;
        };
        let tag = &rest[open..open + len + 2];
        let name = tag.trim_matches(|c| "{%-+ }".contains(c));
        out.push_str(&rest[..open]);
        if name != "generation" && name != "endgeneration" {
            out.push_str(tag);
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

impl ChatTemplate {
    /// Compiles `source`; `bos`/`eos` are the token strings templates may use.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", without_generation_tags(source))
            .map_err(|e| ModelError::Tokenizer(format!("chat template: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos: bos.into(),
            eos: eos.into(),
        })
    }

    /// The prompt for `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages = serde_json::to_value(messages)
            .map_err(|e| ModelError::Tokenizer(format!("chat messages: {e}")))?;
        self.render_value(&messages, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] of messages in their JSON form, where a
    /// content may be a list of parts (`{"type": "image"}`, `{"type": "text",
    /// "text": …}`), as multimodal templates expect.
    pub fn render_value(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| ModelError::Tokenizer(format!("chat template: {e}")))?;
        t.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| ModelError::Tokenizer(format!("chat template: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_turns() {
        let t = parse_turns("[system]\nBe brief.\n[user]\nQ: {x}\n\n[assistant]\nA\n[user]\nQ2");
        let got: Vec<(&str, &str)> = t
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("system", "Be brief."),
                ("user", "Q: {x}"),
                ("assistant", "A"),
                ("user", "Q2")
            ]
        );
        let plain = parse_turns("just a question\non two lines");
        assert_eq!(plain.len(), 1);
        assert_eq!(
            (plain[0].role.as_str(), plain[0].content.as_str()),
            ("user", "just a question\non two lines")
        );
    }

    #[test]
    fn renders_a_chatml_template_with_python_methods() {
        let src = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'].strip() }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        let out = t.render(&[Message::new("user", "  hi  ")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let bad = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        assert!(
            bad.render(&[], true)
                .unwrap_err()
                .to_string()
                .contains("no system role")
        );
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
        // transformers' generation tags render their body.
        let t = ChatTemplate::new(
            "{% for m in messages %}{%- generation -%}{{ m.content }}{% endgeneration %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("assistant", "ok")], false).unwrap(),
            "ok"
        );
    }
}
