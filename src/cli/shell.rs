//! `lakecap shell`: statements end with ';', history in ~/.lakecap_history.

use anyhow::Result;
use lakecap::output::Format;
use lakecap::{Engine, Vars};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

const HELP: &str = "Statements end with ';'. \\q quits, \\? shows this, `lakecap functions` lists functions.\n\
                    Try: CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'sample_lake/';";

pub async fn run(engine: &Engine, defines: &[(String, String)], format: Format) -> Result<()> {
    let vars: Vars = defines.iter().cloned().collect();
    let mut editor = DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".lakecap_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("lakecap {} shell. {HELP}", env!("CARGO_PKG_VERSION"));
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "lakecap> "
        } else {
            "     ... "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    match trimmed {
                        "\\q" => break,
                        _ => eprintln!("{HELP}"),
                    }
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let sql = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(sql.trim());
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = engine
                        .run_script_with(&sql, &vars, |o| super::report(&o, format, &mut out))
                        .await
                    {
                        eprintln!("error: {e:#}");
                    }
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
