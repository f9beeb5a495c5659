//! Lakes on an S3-compatible object store: a real moto server process on
//! loopback, started by this test (moto from PyPI; `.ci/run` installs it).
//!
//! Set `LAKECAP_MOTO_SERVER` to the `moto_server` executable, or have it on PATH.
//! Outside CI the test is skipped with a message when neither exists; in CI
//! (`CI` set) a missing server fails the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use lakecap::sample_lake::{SampleLakeOptions, write_sample_lake};
use lakecap::{Engine, EngineOptions, ProgressMode};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_server() -> Option<String> {
    if let Ok(p) = std::env::var("LAKECAP_MOTO_SERVER") {
        return Some(p);
    }
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    found.then(|| "moto_server".to_string())
}

/// Sends one raw HTTP request (moto does not check signatures) and returns the status line.
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn start(exe: &str) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn count(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_on_s3_reads_writes_and_partitions() {
    let Some(exe) = moto_server() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide moto_server (see .ci/run)"
        );
        eprintln!(
            "skipped: no moto_server (pip install 'moto[server]' or set LAKECAP_MOTO_SERVER)"
        );
        return;
    };
    let (_server, port) = start(&exe);
    let status = http(
        port,
        "PUT /lake HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains("200"), "bucket creation: {status}");

    // Credentials and endpoint come from the usual environment variables.
    // SAFETY: only S3 stores read these, and only this test makes S3 stores;
    // std's environment lock orders the writes with other tests' reads.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    }
    let local = tempfile::tempdir().unwrap();
    write_sample_lake(
        local.path(),
        &SampleLakeOptions {
            rows: 40,
            seed: 3,
            rows_per_file: 10,
        },
    )
    .unwrap();
    let engine = Engine::with_options(EngineOptions {
        ignore_env: true,
        progress: ProgressMode::Off,
        ..Default::default()
    })
    .unwrap();

    // Upload through SQL: COPY ... PARTITIONED BY writes hive folders on S3.
    let up = format!(
        "CREATE EXTERNAL TABLE local_lake STORED AS PARQUET LOCATION '{}/';
         COPY (SELECT * FROM local_lake) TO 's3://lake/web/' STORED AS PARQUET PARTITIONED BY (crawl);",
        local.path().display()
    );
    engine.sql(&up).await.unwrap();

    // Read it back from S3 with hive partitions, and run lakecap functions on it.
    let rows = engine
        .sql(
            "CREATE EXTERNAL TABLE s3_lake STORED AS PARQUET LOCATION 's3://lake/web/';
             SELECT count(*) FROM s3_lake",
        )
        .await
        .unwrap();
    assert_eq!(count(&rows), 40);
    let by_crawl = engine
        .sql("SELECT count(*) FROM s3_lake WHERE crawl = '2026-10'")
        .await
        .unwrap();
    assert_eq!(count(&by_crawl), 16);
    let same = engine
        .sql(
            "SELECT count(*) FROM s3_lake s JOIN local_lake l ON s.key = l.key
             WHERE phash(s.img) = phash(l.img) AND s.alt IS NOT DISTINCT FROM l.alt",
        )
        .await
        .unwrap();
    let decodable = engine
        .sql("SELECT count(*) FROM local_lake WHERE image_error(img) IS NULL")
        .await
        .unwrap();
    assert_eq!(count(&same), count(&decodable));

    // A single hive partition folder reads on its own.
    let one = engine
        .sql("CREATE EXTERNAL TABLE one STORED AS PARQUET LOCATION 's3://lake/web/crawl=2026-09/'; SELECT count(*) FROM one")
        .await
        .unwrap();
    assert_eq!(count(&one), 24);

    // On a cluster, the executors (started with these variables) read S3 themselves.
    let dir = tempfile::tempdir().unwrap();
    let cluster = crate::cluster::Cluster::start(dir.path(), 1);
    let on_cluster = crate::cluster::ok(
        &cluster.sql(
            true,
            "CREATE EXTERNAL TABLE s3_lake STORED AS PARQUET LOCATION 's3://lake/web/';
             SELECT count(phash(img)) AS n FROM s3_lake",
        ),
        "phash over S3 on the cluster",
        &cluster,
    );
    assert_eq!(on_cluster.trim(), format!("n\n{}", count(&decodable)));
    drop(cluster);

    // A missing bucket is a clear error, not a panic.
    let err = engine
        .sql("CREATE EXTERNAL TABLE nope STORED AS PARQUET LOCATION 's3://no-such-bucket/x/'; SELECT count(*) FROM nope")
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("no-such-bucket"), "{err:#}");
}
