//! The report as one self-contained HTML page: inline CSS, charts as inline
//! SVG drawn here, thumbnails as `data:` JPEGs, no server, no CDN and no
//! script but a check, run on load, that names any thumbnail the browser
//! could not draw (on the console and in `body[data-broken]`).

use std::fmt::Write;

use super::collect::{Collected, Metric, Row};

/// What the page says about where its rows came from.
pub struct Meta {
    pub title: String,
    pub source: String,
    pub generated: String,
    pub warnings: Vec<String>,
}

/// A row's thumbnail: a `data:` URI, or why there is none.
pub type Thumb = Result<String, String>;

const BINS: usize = 24;
const CHART_W: f64 = 380.0;
const CHART_H: f64 = 150.0;

const STYLE: &str = r#"
:root { --ink:#1d2330; --muted:#6a7180; --line:#e3e6ec; --kept:#2e8b57; --drop:#d9822b; --bar:#4a6fa5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
header, section { max-width: 1280px; margin: 0 auto; padding: 16px 24px; }
header { background: #fff; border-bottom: 1px solid var(--line); max-width: none; }
h1 { margin: 0 0 4px; font-size: 22px; }
h2 { font-size: 17px; margin: 8px 0 12px; }
.muted { color: var(--muted); }
code { font-size: 12px; background: #eef0f4; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.stats { display: flex; gap: 24px; margin-top: 10px; flex-wrap: wrap; }
.stat b { display: block; font-size: 24px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(400px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px; }
.chart h3 { font-size: 14px; margin: 0 0 6px; }
svg text { font-size: 11px; fill: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
.row img, .noimg { width: 100%; height: 180px; object-fit: contain; background: #eceef2; border-radius: 4px; display: block; }
.noimg { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 12px; padding: 8px; text-align: center; }
.row dl { margin: 8px 0 0; }
.row dt { font-size: 11px; text-transform: uppercase; color: var(--muted); margin-top: 6px; }
.row dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: 11px; padding: 1px 6px; border-radius: 9px; color: #fff; background: var(--kept); }
.badge.drop { background: var(--drop); }
.cluster { display: flex; gap: 8px; overflow-x: auto; align-items: flex-start; }
.cluster figure { margin: 0; width: 140px; flex: none; }
.cluster img, .cluster .noimg { width: 140px; height: 110px; object-fit: cover; }
.cluster figcaption { font-size: 11px; color: var(--muted); overflow-wrap: anywhere; }
.warn { color: #8a4b00; }
"#;

const CHECK: &str = "window.addEventListener('load', () => {\
const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);\
document.body.dataset.images = document.images.length;\
document.body.dataset.broken = bad.length;\
bad.forEach(i => console.error('lakecap report: thumbnail not drawn: ' + i.alt));\
});";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as people read it: integers whole, others to 3 significant digits.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(part: u64, whole: u64) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}

/// Horizontal bars: rows kept and rows per drop reason.
fn outcome_chart(c: &Collected) -> String {
    let mut items: Vec<(String, u64, bool)> = c
        .outcomes
        .iter()
        .map(|(r, n)| match r {
            None => ("kept".to_string(), *n, true),
            Some(r) => (r.clone(), *n, false),
        })
        .collect();
    items.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1) as f64;
    let (label_w, bar_w, h) = (300.0, 520.0, 24.0);
    let mut s = format!(
        r#"<svg role="img" aria-label="rows kept and dropped by reason" width="{}" height="{}" viewBox="0 0 {} {}">"#,
        label_w + bar_w + 120.0,
        h * items.len() as f64 + 4.0,
        label_w + bar_w + 120.0,
        h * items.len() as f64 + 4.0
    );
    for (i, (label, n, kept)) in items.iter().enumerate() {
        let y = i as f64 * h;
        let w = (bar_w * *n as f64 / max).max(1.0);
        let colour = if *kept { "var(--kept)" } else { "var(--drop)" };
        let shown: String = label.chars().take(48).collect();
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{l}</text><rect class="bar" x="{bx}" y="{y}" width="{w:.1}" height="{bh}" fill="{colour}"><title>{t}: {n}</title></rect><text x="{cx:.1}" y="{ty}">{n} ({p})</text>"#,
            x = label_w - 8.0,
            ty = y + 15.0,
            l = escape(&shown),
            bx = label_w,
            bh = h - 6.0,
            t = escape(label),
            cx = label_w + w + 6.0,
            p = pct(*n, c.rows),
        );
    }
    s.push_str("</svg>");
    s
}

/// A histogram with its range and count on the axis and each bin's range on hover.
fn histogram(m: &Metric) -> String {
    let bins = m.histogram(BINS);
    let top = bins.iter().map(|b| b.2).fold(0.0, f64::max).max(1.0);
    let (left, bottom) = (36.0, 20.0);
    let plot_w = CHART_W - left - 8.0;
    let plot_h = CHART_H - bottom - 6.0;
    let bw = plot_w / bins.len().max(1) as f64;
    let mut s = format!(
        r##"<svg role="img" aria-label="histogram of {name}" width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}"><line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#b8bec9"/><text x="{lx}" y="12" text-anchor="end">{top}</text><text x="{lx}" y="{base}" text-anchor="end">0</text>"##,
        name = escape(&m.name),
        base = 6.0 + plot_h,
        right = left + plot_w,
        lx = left - 4.0,
        top = num(top.round()),
    );
    for (i, (lo, hi, n)) in bins.iter().enumerate() {
        let h = plot_h * n / top;
        let range = if m.integral && hi - lo == 1.0 {
            num(*lo)
        } else {
            format!("{} to {}", num(*lo), num(*hi))
        };
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="var(--bar)"><title>{range}: {n} rows</title></rect>"#,
            x = left + i as f64 * bw + 0.5,
            y = 6.0 + plot_h - h,
            w = (bw - 1.0).max(0.5),
            n = num(n.round()),
        );
    }
    let (first, last) = match (bins.first(), bins.last()) {
        (Some(f), Some(l)) if m.integral && l.1 - l.0 == 1.0 => (f.0, l.0),
        _ => (m.min, m.max),
    };
    let _ = write!(
        s,
        r#"<text x="{left}" y="{ly}">{a}</text><text x="{right}" y="{ly}" text-anchor="end">{b}</text></svg>"#,
        ly = CHART_H - 4.0,
        right = left + plot_w,
        a = num(first),
        b = num(last),
    );
    s
}

fn image_html(thumb: Option<&Thumb>, key: &str) -> String {
    match thumb {
        Some(Ok(uri)) => format!(r#"<img loading="eager" src="{uri}" alt="{}">"#, escape(key)),
        Some(Err(why)) => format!(
            r#"<div class="noimg">image not shown: {}</div>"#,
            escape(why)
        ),
        None => r#"<div class="noimg">no image</div>"#.to_string(),
    }
}

fn badge(reason: &Option<String>) -> String {
    match reason {
        None => r#"<span class="badge">kept</span>"#.to_string(),
        Some(r) => format!(r#"<span class="badge drop">{}</span>"#, escape(r)),
    }
}

fn row_card(c: &Collected, row: &Row, thumb: Option<&Thumb>) -> String {
    let mut s = format!(r#"<div class="card row">{}"#, image_html(thumb, &row.key));
    let _ = write!(
        s,
        "<dl><dt>{}</dt><dd><code>{}</code>",
        escape(c.roles.key.as_deref().unwrap_or("row")),
        escape(&row.key)
    );
    if c.roles.reason.is_some() {
        let _ = write!(s, " {}", badge(&row.reason));
    }
    s.push_str("</dd>");
    for (name, text) in c.text_columns.iter().zip(&row.texts) {
        let shown = match text {
            Some(t) => escape(t),
            None => r#"<span class="muted">NULL</span>"#.to_string(),
        };
        let _ = write!(s, "<dt>{}</dt><dd>{shown}</dd>", escape(name));
    }
    s.push_str("</dl></div>");
    s
}

/// The page. `sample_thumbs[i]` and `cluster_thumbs[i][j]` belong to the
/// sample's i-th row and the i-th shown cluster's j-th member.
pub fn page(
    c: &Collected,
    meta: &Meta,
    sample_thumbs: &[Option<Thumb>],
    clusters: &[(&String, &super::collect::Cluster)],
    cluster_thumbs: &[Vec<Option<Thumb>>],
) -> String {
    let kept = c.outcomes.get(&None).copied().unwrap_or(0);
    let mut s = String::with_capacity(1 << 20);
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1><div class="muted">{g} · lakecap {v}</div><div class="muted">source: <code>{src}</code></div><div class="stats"><div class="stat"><b id="rows-in">{rows}</b>rows in</div><div class="stat"><b id="rows-out">{kept}</b>rows out ({p})</div><div class="stat"><b>{dropped}</b>dropped</div></div></header>"#,
        t = escape(&meta.title),
        g = escape(&meta.generated),
        v = env!("CARGO_PKG_VERSION"),
        src = escape(&meta.source),
        rows = c.rows,
        p = pct(kept, c.rows),
        dropped = c.rows - kept,
    );
    s.push_str(r#"<section id="outcomes"><h2>Rows kept and dropped</h2><div class="card">"#);
    match &c.roles.reason {
        Some(col) => {
            let _ = write!(s, r#"<p class="muted">One reason per dropped row, from column <code>{}</code> (NULL = kept).</p>{}"#, escape(col), outcome_chart(c));
        }
        None => s.push_str(r#"<p class="muted">The result has no drop-reason column (<code>dropped_because</code>, or name one with <code>--reason</code>): every row counts as kept.</p>"#),
    }
    for w in &meta.warnings {
        let _ = write!(s, r#"<p class="warn">warning: {}</p>"#, escape(w));
    }
    s.push_str("</div></section>");

    // One-word texts (URLs, file names) have no word-count story to tell.
    let shown: Vec<&Metric> = c
        .metrics
        .iter()
        .filter(|m| m.count > 0 && !(m.words && m.max <= 1.0))
        .collect();
    if !shown.is_empty() {
        s.push_str(r#"<section id="histograms"><h2>Distributions</h2><div class="charts">"#);
        for m in shown {
            let _ = write!(
                s,
                r#"<div class="card chart"><h3>{}</h3><div class="muted">{} rows, mean {}, min {}, max {}{}</div>{}</div>"#,
                escape(&m.name),
                m.count,
                num(m.mean()),
                num(m.min),
                num(m.max),
                if m.nulls > 0 {
                    format!(", {} NULL", m.nulls)
                } else {
                    String::new()
                },
                histogram(m)
            );
        }
        s.push_str("</div></section>");
    }

    let _ = write!(
        s,
        r#"<section id="sample"><h2>A sample of {} rows</h2><p class="muted">Uniform over all {} rows (seeded reservoir sampling); text columns side by side.</p><div class="grid">"#,
        c.sample.len(),
        c.rows
    );
    for (row, thumb) in c.sample.iter().zip(sample_thumbs) {
        s.push_str(&row_card(c, row, thumb.as_ref()));
    }
    s.push_str("</div></section>");

    if let Some(col) = &c.roles.dup_group {
        let (n, rows) = c.cluster_totals();
        let uncounted = match c.groups_uncounted {
            0 => String::new(),
            u => format!(" ({u} more rows belong to values past the first 200,000, not counted)"),
        };
        let _ = write!(
            s,
            r#"<section id="clusters"><h2>Near-duplicate clusters</h2><p class="muted">{n} clusters hold {rows} rows (equal values of <code>{}</code>){uncounted}; the {} biggest, each with up to {} members:</p>"#,
            escape(col),
            clusters.len(),
            super::collect::MEMBERS_SHOWN
        );
        for ((name, cluster), thumbs) in clusters.iter().zip(cluster_thumbs) {
            let _ = write!(
                s,
                r#"<div class="card"><div><code>{}</code> · {} rows</div><div class="cluster">"#,
                escape(name),
                cluster.rows
            );
            for (m, t) in cluster.members.iter().zip(thumbs) {
                let _ = write!(
                    s,
                    "<figure>{}<figcaption>{} {}</figcaption></figure>",
                    image_html(t.as_ref(), &m.key),
                    escape(&m.key),
                    if c.roles.reason.is_some() {
                        badge(&m.reason)
                    } else {
                        String::new()
                    }
                );
            }
            s.push_str("</div></div>");
        }
        s.push_str("</section>");
    }
    let _ = write!(s, "<script>{CHECK}</script></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">&'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn numbers_read_plainly() {
        assert_eq!(num(240.0), "240");
        assert_eq!(num(27.456), "27.46");
        assert_eq!(num(0.12345), "0.123");
        assert_eq!(num(1234.56), "1234.6");
    }
}
