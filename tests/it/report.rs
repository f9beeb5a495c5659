//! `lakecap report` end to end: the page's numbers, its size at 10k rows,
//! bad input, and the page opened in a real headless Chromium (no console
//! errors, every thumbnail drawn, charts and photos on the screenshot).
//!
//! The browser is `LAKECAP_CHROMIUM`, else `chromium` (Debian's package).
//! Without one the browser checks are skipped with a note, unless
//! `LAKECAP_REQUIRE_CHROMIUM` is set, as CI sets it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{lakecap, text};

fn chromium() -> Option<PathBuf> {
    let wanted =
        std::env::var_os("LAKECAP_CHROMIUM").map_or_else(|| "chromium".into(), PathBuf::from);
    let found = Command::new(&wanted)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(wanted);
    }
    assert!(
        std::env::var_os("LAKECAP_REQUIRE_CHROMIUM").is_none(),
        "LAKECAP_REQUIRE_CHROMIUM is set but {} does not run (apt-get install chromium)",
        wanted.display()
    );
    eprintln!(
        "skipped browser checks: no chromium (apt-get install chromium, or set LAKECAP_CHROMIUM)"
    );
    None
}

/// Opens `page` in headless Chromium: the DOM after load, the console
/// lines, and a screenshot of the top 1280x`height` pixels.
fn render(browser: &Path, page: &Path, height: u32) -> (String, Vec<String>, image::RgbImage) {
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("shot.png");
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |extra: &[&str]| {
        let o = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let dumped = run(&["--dump-dom"]);
    let console = String::from_utf8_lossy(&dumped.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    run(&[
        &format!("--window-size=1280,{height}"),
        &format!("--screenshot={}", shot.display()),
    ]);
    let png = image::open(&shot).unwrap().to_rgb8();
    (String::from_utf8(dumped.stdout).unwrap(), console, png)
}

/// The page loads without console errors, draws every thumbnail it holds,
/// and its screenshot shows charts and photos, not a blank page.
pub fn assert_renders(page: &Path) {
    let Some(browser) = chromium() else { return };
    let html = std::fs::read_to_string(page).unwrap();
    let images = html.matches("<img ").count();
    let (dom, console, shot) = render(&browser, page, 3000);
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(dom.contains(r#"data-broken="0""#), "thumbnails not drawn");
    assert!(
        dom.contains(&format!(r#"data-images="{images}""#)),
        "{images} images expected"
    );
    assert!(dom.matches(r#"class="bar""#).count() >= 3, "charts missing");
    let colours: HashSet<[u8; 3]> = shot.pixels().map(|p| p.0.map(|c| c >> 3)).collect();
    assert!(
        colours.len() > 300,
        "the screenshot is nearly blank: {} colours",
        colours.len()
    );
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start}")) + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

#[test]
fn report_on_10k_rows_is_small_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        lakecap(&["sample-lake", "lake"], dir.path())
            .status
            .success()
    );
    // 42 copies of each of the 240 rows: every original key is a cluster
    // of 42, and every tenth copy is dropped.
    std::fs::write(
        dir.path().join("big.sql"),
        "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'lake/';
         SELECT l.key || '-' || g.value AS key, l.img, l.alt, length(l.alt) AS alt_chars,
                CASE WHEN g.value % 10 = 0 THEN 'every tenth copy' END AS dropped_because,
                l.key AS dup_group
         FROM lake l CROSS JOIN generate_series(1, 42) g(value)",
    )
    .unwrap();
    let o = lakecap(
        &["report", "big.sql", "--out", "r/big.html", "--sample", "24"],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.starts_with("report: r/big.html (10080 rows in, 9120 out"),
        "{out}"
    );
    let page = dir.path().join("r/big.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 2 << 20, "{} bytes at 10k rows", html.len());
    assert_eq!(between(&html, r#"<b id="rows-in">"#, "<"), "10080");
    assert_eq!(between(&html, r#"<b id="rows-out">"#, "<"), "9120");
    assert!(html.contains("every tenth copy: 960"), "drop reason bar");
    assert!(
        html.contains("240 clusters hold 10080 rows"),
        "cluster count"
    );
    assert_eq!(html.matches(r#"class="card row""#).count(), 24);
    assert!(html.contains("<h3>alt_chars</h3>") && html.contains("<h3>words in alt</h3>"));
    for remote in [r#"src="http"#, "href=", "@import", "url("] {
        assert!(!html.contains(remote), "the page loads {remote}");
    }
    assert_renders(&page);
}

#[test]
fn report_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = text(&lakecap(
        &[
            "report",
            "SELECT 1 AS x",
            "--reason",
            "why",
            "--out",
            "a.html",
        ],
        dir.path(),
    ));
    assert!(
        err.contains("no column 'why' for the drop reason in the result (columns: x)"),
        "{err}"
    );
    let (_, err) = text(&lakecap(
        &["report", "SELEC 1", "--out", "a.html"],
        dir.path(),
    ));
    assert!(err.contains("SQL syntax error"), "{err}");
    let (_, err) = text(&lakecap(&["report", "missing.sql"], dir.path()));
    assert!(err.contains("cannot read missing.sql"), "{err}");
    let (_, err) = text(&lakecap(
        &["report", "SELECT 1 AS x", "--image", "x"],
        dir.path(),
    ));
    assert!(err.contains("the image column 'x' is Int64"), "{err}");
    assert!(!dir.path().join("a.html").exists());
}
