//! The `lakecap` binary end to end: sql, run, sample-lake, demo, functions, and bad input.

use std::path::Path;
use std::process::{Command, Output};

pub fn lakecap(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakecap"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LAKECAP_ON_ERROR")
        .output()
        .expect("lakecap runs")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn sql_formats() {
    let dir = tempfile::tempdir().unwrap();
    let o = lakecap(
        &[
            "sql",
            "SELECT hamming(-1, 0) AS d, 'x' AS s",
            "--format",
            "csv",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(text(&o).0, "d,s\n64,x\n");
    let o = lakecap(&["sql", "SELECT 1 AS one", "-f", "json"], dir.path());
    assert_eq!(text(&o).0, "{\"one\":1}\n");
    let o = lakecap(
        &["sql", "SELECT 1 AS one; SELECT 2 AS two", "-o", "out.txt"],
        dir.path(),
    );
    assert!(o.status.success());
    let written = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    assert!(
        written.contains("| one |") && written.contains("| two |"),
        "{written}"
    );
}

#[test]
fn errors_are_clear_and_exit_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = text(&lakecap(&["sql", "SELEC 1"], dir.path()));
    assert!(err.contains("SQL syntax error"), "{err}");
    let o = lakecap(
        &["sql", "SELECT 1; SELECT nope FROM missing_table"],
        dir.path(),
    );
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(
        err.contains("statement 2 failed: SELECT nope FROM missing_table")
            && err.contains("missing_table"),
        "{err}"
    );
    let (_, err) = text(&lakecap(&["run", "no/such/file.sql"], dir.path()));
    assert!(err.contains("cannot read no/such/file.sql"), "{err}");
    let (_, err) = text(&lakecap(
        &[
            "sql",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/no/such/dir/'; SELECT * FROM t",
        ],
        dir.path(),
    ));
    assert!(err.contains("error:"), "{err}");
    let (_, err) = text(&lakecap(
        &["sql", "SELECT '${UNSET_LAKECAP_VAR}'"],
        dir.path(),
    ));
    assert!(err.contains("--define UNSET_LAKECAP_VAR=VALUE"), "{err}");
    std::fs::write(dir.path().join("lakecap.toml"), "on_error = 'maybe'\n").unwrap();
    let (_, err) = text(&lakecap(&["sql", "SELECT 1"], dir.path()));
    assert!(
        err.contains("lakecap.toml") && err.contains("'null' or 'fail'"),
        "{err}"
    );
}

#[test]
fn config_file_sets_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lakecap.toml"), "on_error = 'fail'\n").unwrap();
    let o = lakecap(&["sql", "SELECT phash(X'00')"], dir.path());
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("phash(lit) at row 0 of a batch: not an image"),
        "{err}"
    );
    let o = lakecap(
        &[
            "sql",
            "SET lakecap.on_error = 'null'; SELECT phash(X'00') AS h",
            "-f",
            "csv",
        ],
        dir.path(),
    );
    assert_eq!(text(&o).0, "h\n\"\"\n");
}

#[test]
fn run_script_with_defines_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.path().join("audit.sql"),
        "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';\nSELECT count(*) AS n, count(phash(img)) AS hashed FROM lake;",
    )
    .unwrap();
    let o = lakecap(
        &["sample-lake", "lake", "--rows", "50", "--seed", "5"],
        dir.path(),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("wrote 50 rows"));
    let o = lakecap(
        &["run", "audit.sql", "-D", "LAKE=lake/", "-f", "csv"],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // 50 rows; hashed = rows minus corrupt, truncated, non-image, empty, NULL and bomb images.
    assert!(out.starts_with("n,hashed\n50,"), "{out}");
    assert!(
        err.contains("warning: phash(img)")
            && err.contains("gave NULL")
            && err.contains("(first: phash(img) at key = '"),
        "{err}"
    );
    let recipe = lakecap(
        &[
            "run",
            &format!("{root}/sql/alt_audit.sql"),
            "-D",
            "LAKE=lake/",
            "-f",
            "csv",
        ],
        dir.path(),
    );
    let (out, err) = text(&recipe);
    assert!(recipe.status.success(), "{err}");
    assert!(out.starts_with("kind,rows,mean_score\nusable,"), "{out}");
}

/// The model recipes on a sample lake, with the tiny CLIP fixture standing in
/// for real weights (its text tower serves embed_text too), the tiny Llama for
/// the LLM (with a prompt that fits its short context) and the tiny BLIP for
/// the captioner.
#[test]
fn model_recipes_run_on_the_sample_lake() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let model = format!("{root}/tests/fixtures/models/clip-tiny");
    let llm = format!("{root}/tests/fixtures/models/llama-tiny");
    let blip = format!("{root}/tests/fixtures/models/blip-tiny");
    let vlm = format!("{root}/tests/fixtures/models/qwen2-vl-tiny");
    assert!(
        lakecap(
            &["sample-lake", "lake", "--rows", "80", "--seed", "3"],
            dir.path()
        )
        .status
        .success()
    );
    // DataComp's image-based filter's references: three of the lake's own images.
    let o = Command::new(env!("CARGO_BIN_EXE_lakecap"))
        .args([
            "sql",
            "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'lake/';
             COPY (SELECT key, embed_image(img) AS v FROM lake WHERE image_error(img) IS NULL
                   ORDER BY key LIMIT 3) TO 'reference.parquet' STORED AS PARQUET",
        ])
        .current_dir(dir.path())
        .env("LAKECAP_CLIP_MODEL", &model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    for (recipe, header) in [
        (
            "datacomp_image_based",
            "rows,embedded,reference_images,clusters,clusters_kept,kept\n",
        ),
        (
            "eval_self_retrieval",
            "source,captions,r_at_1,r_at_5,r_at_10,median_rank,bag_at_10,distinct_captions,distinct_2,changed,pool\n",
        ),
        (
            "aesthetic_filter",
            "rows,scored,kept,min_kept_score,max_dropped_score\n",
        ),
        (
            "eval_captions",
            "source,rows,mean_words,median_words,vocab,distinct_1,distinct_2,mean_chars,clip_score\n",
        ),
        ("datacomp_filter", "rows,scored,above_28,p70\n"),
        ("tldr_reduce", "rows,embedded,clusters,sampled,kept\n"),
        ("noc_buckets", "level,rows,min_s,max_s\n"),
        (
            "alip_weights",
            "pairs,down_weighted,min_w_s,max_w_s,mean_w_raw,mean_w_cap\n",
        ),
        (
            "datacomp_basic",
            "rows,passed_text_and_image_rules,kept,min_kept_score,max_dropped_score\n",
        ),
        ("semdedup", "embedded,kept,duplicates,clusters\n"),
        ("caption_dedup", "captions,paraphrase_duplicates\n"),
        ("capsfusion", "rows,fused,caption_kept\n"),
        (
            "eval_fusion",
            "rows,fused,fused_share,novel_word_rate,alt_word_survival,caption_word_survival\n",
        ),
        ("veclip", "rows,rewritten,trained_on_vec\n"),
        ("fusecap", "rows,tagged,fused\n"),
        (
            "rank_fuse",
            "images,alt_ranked_first,caption_ranked_first\n",
        ),
        (
            "recaption_vlm",
            "images,captioned,mean_caption_chars,mean_alt_chars\n",
        ),
        (
            "vfc",
            "images,proposals,objects_claimed,images_with_facts,captioned\n",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_lakecap"))
            .args([
                "run",
                &format!("{root}/sql/{recipe}.sql"),
                "-D",
                "LAKE=lake/",
                "-D",
                "CAPTIONS=lake.captions.parquet",
                "-D",
                "SYNTHETIC_SHARE=0.5",
                "-D",
                "REFERENCE=reference.parquet",
                "-D",
                &format!("HEAD={root}/tests/fixtures/models/head-clip16-tiny"),
                "-D",
                "MIN_SCORE=0",
                "-D",
                "PROMPT=Describe this image in detail.",
                "-D",
                &format!("OUT=out-{recipe}/"),
                "-f",
                "csv",
            ])
            .current_dir(dir.path())
            .env("LAKECAP_CLIP_MODEL", &model)
            .env("LAKECAP_TEXT_MODEL", &model)
            .env("LAKECAP_LLM_MODEL", &llm)
            .env("LAKECAP_LLM_MAX_TOKENS", "3")
            .env("LAKECAP_FUSE_PROMPT", "Fuse: {alt} | {caption}{extra}")
            .env("LAKECAP_DEVICE", "cpu")
            .env("LAKECAP_CAPTION_MODEL", &blip)
            .env("LAKECAP_VLM_MODEL", &vlm)
            .env("LAKECAP_CACHE", "off")
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{recipe}: {err}");
        assert!(out.contains(header), "{recipe}: {out}");
        let numbers = |out: &str| -> Vec<f64> {
            let row = out.split(header).nth(1).unwrap().lines().next().unwrap();
            row.split(',')
                .map(|x| x.parse().unwrap_or(f64::NAN))
                .collect()
        };
        if recipe == "datacomp_image_based" {
            // Each reference is in the pool, so its own cluster (its nearest
            // centroid) is kept: at most 3 clusters, and the 3 references
            // among the kept rows written out.
            let v = numbers(&out);
            let (embedded, clusters, clusters_kept, kept) = (v[1], v[3], v[4], v[5]);
            assert!(
                clusters == 32.0 && (1.0..=3.0).contains(&clusters_kept),
                "{out}"
            );
            assert!(3.0 <= kept && kept < embedded, "{out}");
            let o = lakecap(
                &[
                    "sql",
                    "CREATE EXTERNAL TABLE k STORED AS PARQUET LOCATION 'out-datacomp_image_based/';
                     CREATE EXTERNAL TABLE r STORED AS PARQUET LOCATION 'reference.parquet';
                     SELECT count(*) AS refs_kept FROM k JOIN r ON r.key = k.key",
                    "-f",
                    "csv",
                ],
                dir.path(),
            );
            assert_eq!(text(&o).0, "refs_kept\n3\n");
        }
        if recipe == "eval_self_retrieval" {
            // Per source: recall grows with k, the median rank lies in the
            // pool, and guidance changes the greedy captions (the tiny models
            // are untrained, so retrieval itself is at chance: the recipe says so).
            let rows: Vec<(String, Vec<f64>)> = out
                .split(header)
                .nth(1)
                .unwrap()
                .lines()
                .take(4)
                .map(|l| {
                    let (source, rest) = l.split_once(',').unwrap();
                    (
                        source.to_string(),
                        rest.split(',').map(|x| x.parse().unwrap()).collect(),
                    )
                })
                .collect();
            let sources: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
            assert_eq!(
                sources,
                ["alt", "blip greedy", "blip guidance 2", "fused"],
                "{out}"
            );
            for (source, v) in &rows {
                let (r1, r5, r10, median, pool) = (v[1], v[2], v[3], v[4], v[9]);
                assert!(
                    0.0 <= r1 && r1 <= r5 && r5 <= r10 && r10 <= 1.0,
                    "{source}: {out}"
                );
                assert!((1.0..=pool).contains(&median), "{source}: {out}");
                assert!(
                    v[0] <= pool && (0.0..=1.0).contains(&v[5]),
                    "{source}: {out}"
                );
            }
            assert_eq!((rows[1].1[0], rows[1].1[8]), (rows[1].1[9], 0.0), "{out}");
            assert!(
                rows[2].1[8] > 0.5,
                "guidance left the captions unchanged: {out}"
            );
        }
        if recipe == "aesthetic_filter" {
            // Every decodable image is scored; the cut at 0 splits them.
            let v = numbers(&out);
            let (scored, kept, min_kept, max_dropped) = (v[1], v[2], v[3], v[4]);
            assert!(0.0 < kept && kept < scored, "{out}");
            assert!(min_kept >= 0.0 && max_dropped < 0.0, "{out}");
        }
        if recipe == "eval_captions" {
            // One row per source, each statistic within its bounds.
            let rows: Vec<&str> = out.split(header).nth(1).unwrap().lines().take(3).collect();
            let sources: Vec<&str> = rows.iter().map(|l| l.split(',').next().unwrap()).collect();
            assert_eq!(sources, ["alt", "fused", "recaption"], "{out}");
            for l in rows {
                let v: Vec<f64> = l.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
                let (rows, words, vocab, d1, d2, chars, score) =
                    (v[0], v[1], v[3], v[4], v[5], v[6], v[7]);
                assert!(rows > 0.0 && vocab >= 1.0 && chars >= words, "{l}");
                assert!(
                    (0.0..=1.0).contains(&d1) && (0.0..=1.0).contains(&d2),
                    "{l}"
                );
                assert!((0.0..=100.0).contains(&score), "{l}");
            }
        }
        if recipe == "tldr_reduce" {
            // Every cluster keeps its first member and every 5th after it;
            // the score cut only removes.
            let v = numbers(&out);
            let (embedded, clusters, sampled, kept) = (v[1], v[2], v[3], v[4]);
            assert!(clusters <= 16.0 && sampled >= clusters, "{out}");
            assert!(
                sampled <= embedded / 5.0 + clusters && kept <= sampled && kept > 0.0,
                "{out}"
            );
        }
        if recipe == "alip_weights" {
            // W_s = min(exp(2 (s_tc - m_tc)), 1): under 1 exactly for pairs
            // below the mean, which some but not all pairs are.
            let v = numbers(&out);
            assert!(0.0 < v[1] && v[1] < v[0], "{out}");
            assert!(0.0 < v[2] && v[2] < 1.0 && v[3] == 1.0, "{out}");
        }
        if recipe == "noc_buckets" {
            // Levels 0..7 of equal-width buckets over [min, max] of the raw
            // cosines: the extremes at 0 and 7, each level within its bucket.
            let levels: Vec<Vec<f64>> = out
                .split(header)
                .nth(1)
                .unwrap()
                .lines()
                .map(|l| {
                    l.split(',')
                        .map(|x| x.parse().unwrap_or(f64::NAN))
                        .collect()
                })
                .take_while(|v: &Vec<f64>| v.len() == 4 && v.iter().all(|x| x.is_finite()))
                .collect();
            let (lo, hi) = (levels[0][2], levels.last().unwrap()[3]);
            assert_eq!(
                (levels[0][0], levels.last().unwrap()[0]),
                (0.0, 7.0),
                "{out}"
            );
            let w = (hi - lo) / 8.0;
            for v in &levels {
                let (level, min, max) = (v[0], v[2], v[3]);
                assert!(
                    min >= lo + level * w - 1e-6 && max <= lo + (level + 1.0) * w + 1e-6,
                    "{out}"
                );
            }
        }
        if recipe == "datacomp_basic" {
            // Some rows fail the text/image rules, and the score cut keeps a
            // top fraction: no kept score under a dropped one.
            let v = numbers(&out);
            assert!(0.0 < v[2] && v[2] <= v[1] && v[1] < v[0], "{out}");
            assert!(v[4].is_nan() || v[3] >= v[4], "{out}");
        }
    }
}

#[test]
fn demo_curates_the_sample_lake() {
    let dir = tempfile::tempdir().unwrap();
    let o = lakecap(&["demo", "--rows", "120"], dir.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("note: clip_score skipped"), "{err}");
    assert!(err.contains("note: recaption skipped"), "{err}");
    assert!(out.contains("rows in:  120"), "{out}");
    for reason in [
        "exact duplicate",
        "near duplicate",
        "bad image: truncated",
        "bad image: too many pixels",
        "kept",
    ] {
        assert!(out.contains(reason), "missing '{reason}' in\n{out}");
    }
    let kept: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("rows out: "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((60..110).contains(&kept), "{out}");
    // The curated lake is parquet, partitioned by crawl, and holds exactly the kept rows.
    let o = lakecap(
        &[
            "sql",
            "CREATE EXTERNAL TABLE c STORED AS PARQUET LOCATION 'out/curated/'; SELECT count(*) AS n, count(DISTINCT crawl) AS crawls FROM c",
            "-f",
            "csv",
        ],
        dir.path(),
    );
    assert_eq!(text(&o).0, format!("n,crawls\n{kept},2\n"));
    // The report beside it tells the same story and renders in a browser.
    assert!(out.contains("report: out/curated.report.html"), "{out}");
    let page = dir.path().join("out/curated.report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(r#"<b id="rows-in">120</b>"#));
    assert!(html.contains(&format!(r#"<b id="rows-out">{kept}</b>"#)));
    for part in [
        "near duplicate: ",
        "exact duplicate: ",
        "<h3>alt_score</h3>",
        "<h3>info.width</h3>",
        "<dt>description</dt>",
        r#"<section id="clusters">"#,
    ] {
        assert!(html.contains(part), "report lacks {part}");
    }
    crate::report::assert_renders(&page);
    // Rerunning replaces the demo's own output; a foreign folder is refused.
    assert!(lakecap(&["demo"], dir.path()).status.success());
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    let (_, err) = text(&lakecap(&["demo", "--out", "mine"], dir.path()));
    assert!(err.contains("was not written by the demo"), "{err}");
}

#[test]
fn functions_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = text(&lakecap(&["functions"], dir.path()));
    for f in [
        "phash(img)",
        "dhash(img)",
        "hamming(a, b)",
        "image_info(img)",
        "image_error(img)",
        "thumbnail(img, max_side)",
        "alt_quality(alt)",
        "near_duplicates(",
        "lakecap.on_error = null",
    ] {
        assert!(out.contains(f), "missing {f} in\n{out}");
    }
}

#[test]
fn models_list_and_pull() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let home = dir.path().join("home");
    let tiny = home.join("models/test/clip-tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            format!("{root}/tests/fixtures/models/clip-tiny/{f}"),
            tiny.join(f),
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lakecap"))
            .args(args)
            .env("LAKECAP_HOME", &home)
            .env("HF_HOME", dir.path().join("hf"))
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let (out, _) = text(&run(&["models", "list"]));
    assert!(
        out.contains("test/clip-tiny") && out.contains("clip"),
        "{out}"
    );
    let o = run(&["models", "pull", "org/model"]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("cannot download org/model"),
        "{err}"
    );
    let (_, err) = text(&run(&["models", "pull", "../x"]));
    assert!(err.contains("ORG/NAME"), "{err}");
}

/// sql/safety_filter.sql on a sample lake with the real open_nsfw weights
/// (skipped without them, unless `LAKECAP_REQUIRE_MODELS=1`): every
/// decodable image is scored, the synthetic images are all safe, and the
/// kept rows are written.
#[test]
fn safety_recipe_runs_on_the_sample_lake() {
    if lakecap_models::hub::resolve("yahoo/open_nsfw").is_err() {
        assert!(
            std::env::var("LAKECAP_REQUIRE_MODELS").is_err(),
            "yahoo/open_nsfw missing: run scripts/fetch-models.sh"
        );
        eprintln!("skipping: yahoo/open_nsfw not found (run scripts/fetch-models.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let lake = lakecap(
        &["sample-lake", "lake", "--rows", "40", "--seed", "5"],
        dir.path(),
    );
    assert!(lake.status.success());
    let o = lakecap(
        &[
            "run",
            &format!("{root}/sql/safety_filter.sql"),
            "-D",
            "LAKE=lake/",
            "-D",
            "MAX_NSFW=0.2",
            "-D",
            "OUT=safe/",
            "-f",
            "csv",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let header = "rows,scored,safe,review,unsafe,kept\n";
    let row: Vec<u64> = out
        .split(header)
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"))
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    let [rows, scored, safe, review, unsafe_, kept] = row[..] else {
        panic!("{out}")
    };
    assert_eq!(rows, 40);
    assert!(
        scored > 20 && scored < rows,
        "the lake's broken images are not scored: {out}"
    );
    assert_eq!(
        (safe, review, unsafe_, kept),
        (scored, 0, 0, scored),
        "{out}"
    );
    assert!(dir.path().join("safe").is_dir());
}
