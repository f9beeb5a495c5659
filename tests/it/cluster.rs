//! lakecap on a Ballista cluster: a scheduler and executors, each a process
//! of the `lakecap` binary on loopback at free ports, started and stopped
//! here; queries from the CLI with `--cluster`, compared with the same SQL
//! run in one process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::root;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lakecap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lakecap"));
    c.env_remove("LAKECAP_ON_ERROR")
        .env_remove("LAKECAP_CLUSTER")
        .env("LAKECAP_DEVICE", "cpu");
    c
}

/// A scheduler and executors, killed when dropped.
pub(crate) struct Cluster {
    url: String,
    dir: PathBuf,
    scheduler: Child,
    executors: Vec<Child>,
}

impl Cluster {
    pub(crate) fn start(dir: &Path, executors: usize) -> Cluster {
        let port = free_port();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let scheduler = lakecap()
            .args(["cluster", "scheduler", "--port", &port.to_string()])
            .stderr(log("scheduler.log"))
            .spawn()
            .unwrap();
        let url = format!("df://127.0.0.1:{port}");
        let mut c = Cluster {
            url,
            dir: dir.to_path_buf(),
            scheduler,
            executors: Vec::new(),
        };
        for i in 0..executors {
            let child = lakecap()
                .args([
                    "cluster",
                    "executor",
                    "--scheduler",
                    &format!("127.0.0.1:{port}"),
                ])
                .args([
                    "--port",
                    &free_port().to_string(),
                    "--concurrent-tasks",
                    "1",
                ])
                .args(["--device", "cpu"])
                .stderr(log(&format!("executor{i}.log")))
                .spawn()
                .unwrap();
            c.executors.push(child);
        }
        c.wait_for_executors(executors);
        c
    }

    fn status(&self) -> String {
        let o = lakecap()
            .args(["--cluster", &self.url, "cluster", "status"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    fn wait_for_executors(&self, n: usize) {
        let start = Instant::now();
        loop {
            let s = self.status();
            if s.contains(&format!(": {n} executor(s)")) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{n} executors never registered: {s}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The body of GET `path` on the scheduler's port.
    fn rest(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("df://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                out += &format!(
                    "--- {}\n{}",
                    p.display(),
                    std::fs::read_to_string(&p).unwrap()
                );
            }
        }
        out
    }

    /// `lakecap [--cluster URL] sql SQL` in `self.dir`.
    pub(crate) fn sql(&self, on_cluster: bool, sql: &str) -> Output {
        let mut c = lakecap();
        if on_cluster {
            c.args(["--cluster", &self.url]);
        }
        c.args(["--no-progress", "sql", sql, "--format", "csv"])
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain([&mut self.scheduler]) {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

pub(crate) fn ok(o: &Output, what: &str, cluster: &Cluster) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        cluster.logs()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const LAKE: &str = "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'lake/';";

/// A folder with the 240-row sample lake in `lake/`.
fn with_sample_lake() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let made = lakecap()
        .args(["sample-lake", "lake", "--rows", "240"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    tmp
}

/// The demo, a model query and settings give on the cluster what they give
/// in one process.
#[test]
fn the_cluster_runs_the_demo_models_and_settings_like_one_process() {
    let tmp = with_sample_lake();
    let dir = tmp.path();
    let cluster = Cluster::start(dir, 2);

    // The cluster may also come from LAKECAP_CLUSTER or lakecap.toml.
    let status = |c: &mut Command| {
        let o = c
            .args(["cluster", "status"])
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let by_env = status(lakecap().env("LAKECAP_CLUSTER", &cluster.url));
    assert!(
        by_env.contains(": 2 executor(s)") && by_env.contains("device cpu"),
        "{by_env}"
    );
    std::fs::write(
        dir.join("lakecap.toml"),
        format!("cluster = '{}'\n", cluster.url),
    )
    .unwrap();
    let by_file = status(&mut lakecap());
    std::fs::remove_file(dir.join("lakecap.toml")).unwrap();
    assert!(by_file.contains(": 2 executor(s)"), "{by_file}");
    let none = status(&mut lakecap());
    assert!(none.contains("which cluster?"), "{none}");

    // sql/demo.sql: the same summary and the same curated rows.
    let demo = root().join("sql/demo.sql");
    let run = |on_cluster: bool, out: &str| {
        let mut c = lakecap();
        if on_cluster {
            c.args(["--cluster", &cluster.url]);
        }
        let o = c
            .args(["--no-progress", "run"])
            .arg(&demo)
            .args([
                "-D",
                "LAKE=lake/",
                "-D",
                &format!("OUT={out}/"),
                "--format",
                "csv",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        ok(&o, "demo", &cluster)
    };
    let (one, many) = (run(false, "out_one"), run(true, "out_cluster"));
    assert!(one.contains("kept,139"), "{one}");
    assert_eq!(one, many);
    let rows = |out: &str| {
        ok(
            &cluster.sql(
                false,
                &format!(
                    "CREATE EXTERNAL TABLE o STORED AS PARQUET LOCATION '{out}/'; \
                     SELECT key, caption, phash, alt_score, sha256(img) AS h FROM o ORDER BY key"
                ),
            ),
            "reading the curated rows",
            &cluster,
        )
    };
    let curated = rows("out_one");
    assert_eq!(curated.lines().count(), 1 + 139, "{curated}");
    assert_eq!(curated, rows("out_cluster"));

    // SET reaches the executors: on_error = 'fail' fails the query there.
    let count = format!("{LAKE} SELECT count(phash(img)) AS n FROM lake");
    let o = cluster.sql(true, &count);
    assert_eq!(ok(&o, "phash", &cluster).trim(), "n\n212");
    let o = cluster.sql(true, &format!("SET lakecap.on_error = 'fail'; {count}"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "on_error = 'fail' did not reach the executors"
    );
    assert!(
        err.contains("phash(") && err.contains("at key = '"),
        "{err}"
    );

    // A model query: real MiniLM embeddings, then SemDeDup over them.
    const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
    if lakecap_models::hub::resolve(MINILM).is_err() {
        assert!(
            std::env::var("LAKECAP_REQUIRE_MODELS").is_err(),
            "{MINILM} missing: run scripts/fetch-models.sh"
        );
        eprintln!("skipping the model query: {MINILM} not found");
        return;
    }
    let semdedup = format!(
        "{LAKE} CREATE TABLE e AS SELECT key, embed_text(alt) AS v FROM lake WHERE alt IS NOT NULL; \
         SELECT key, \"cluster\", dup_of FROM semantic_duplicates('e', 'key', 'v', 0.9) ORDER BY key"
    );
    let one = ok(
        &cluster.sql(false, &semdedup),
        "semantic_duplicates",
        &cluster,
    );
    let many = ok(
        &cluster.sql(true, &semdedup),
        "semantic_duplicates on the cluster",
        &cluster,
    );
    assert!(one.lines().count() > 200, "{one}");
    assert!(
        one.lines().filter(|l| !l.ends_with(',')).count() > 1,
        "no duplicates found: {one}"
    );
    assert_eq!(one, many);
}

/// Killing an executor mid-query: the scheduler takes it for dead after
/// `cluster::EXECUTOR_TIMEOUT` without a heartbeat and runs its tasks on the
/// other executor; the query completes with every row.
#[test]
fn a_killed_executor_s_tasks_run_on_the_other() {
    let tmp = with_sample_lake();
    let dir = tmp.path();
    let mut cluster = Cluster::start(dir, 2);
    // Every image hashed 40 times: long enough to kill an executor midway.
    let values: Vec<String> = (0..40).map(|i| format!("({i})")).collect();
    let sql = format!(
        "{LAKE} SELECT count(phash(img)) AS n FROM lake CROSS JOIN (VALUES {}) v(i)",
        values.join(",")
    );
    let query = lakecap()
        .args(["--cluster", &cluster.url, "sql", &sql, "--format", "csv"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !cluster.status().contains("1 running job(s)") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the query never started: {}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.executors[0].kill().unwrap();
    let o = query.wait_with_output().unwrap();
    let out = ok(&o, "the query after a killed executor", &cluster);
    // 212 of the 240 sample images decode (the demo's summary above).
    assert_eq!(out.trim(), format!("n\n{}", 212 * 40), "{}", cluster.logs());
    assert!(cluster.status().contains(": 1 executor(s)"));
    // Its progress (plain lines off a terminal) says where it runs.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lakecap: running on the cluster, "), "{err}");
}

/// A refresh job on the cluster: executors compute, this process commits.
/// Crashed while a group's rows stream back (then at a commit), the rerun
/// takes over and the output holds every source row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_on_the_cluster_crashed_mid_run_loses_and_duplicates_nothing() {
    use crate::refresh::{SQL, assert_exactly_once, job_text, lake, write_job};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("lake");
    lake(&src, 40, 5);
    let cluster = Cluster::start(dir, 2);
    for (format, point) in [("delta", "mid_batch@2"), ("parquet", "during_commit@2")] {
        let case = dir.join(format);
        std::fs::create_dir_all(&case).unwrap();
        let out = case.join("out");
        let job = write_job(&case, &job_text(&src, &out, format, 1, SQL));
        let refresh = |fault: Option<&str>| {
            let mut c = lakecap();
            if let Some(f) = fault {
                c.env("LAKECAP_FAULT", f);
            }
            c.env("LAKECAP_HOME", dir)
                .args(["--cluster", &cluster.url, "--no-progress", "refresh"])
                .arg(&job)
                .output()
                .unwrap()
        };
        let crashed = refresh(Some(point));
        let err = String::from_utf8_lossy(&crashed.stderr);
        assert!(
            !crashed.status.success() && err.contains("injected crash"),
            "{format}: {err}"
        );
        let rerun = refresh(None);
        let err = String::from_utf8_lossy(&rerun.stderr);
        assert!(
            rerun.status.success(),
            "{format}: {err}\n{}",
            cluster.logs()
        );
        assert!(err.contains("taking over a stale lock"), "{format}: {err}");
        assert_exactly_once(&src, &out, format).await;
    }
    // The work ran as jobs of the scheduler (Ballista's REST API).
    let jobs = cluster.rest("/api/jobs");
    assert!(jobs.matches("\"Completed\"").count() >= 6, "{jobs}");
}

/// A scheduler that does not answer: one line naming its URL.
#[test]
fn an_unreachable_scheduler_is_named() {
    let url = format!("df://127.0.0.1:{}", free_port());
    let o = lakecap()
        .args(["--cluster", &url, "sql", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the lakecap scheduler at {url}"
        )),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
