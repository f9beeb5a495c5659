//! `lakecap serve` with real clients on loopback: arrow-flight's Flight SQL
//! client (Rust) and, where `LAKECAP_ADBC_PYTHON` names a Python with
//! `adbc-driver-flightsql` (CI), the ADBC driver. Each test starts the
//! server process on a free port and stops it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetTables, SqlInfo};
use futures::StreamExt;
use tonic::transport::Channel;

use crate::cli::{lakecap, text};

/// A running `lakecap serve`, killed on drop; its stderr is kept.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str], dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lakecap"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .env("LAKECAP_DEVICE", "cpu")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lakecap serve starts");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address: {first:?}; {}", log.lock().unwrap()))
        .to_string();
    Server { child, addr, log }
}

async fn client(addr: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

/// Runs `sql` through GetFlightInfo and DoGet.
async fn query(
    c: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, FlightError> {
    let info = c.execute(sql.to_string(), None).await?;
    let mut out = Vec::new();
    for ep in info.endpoint {
        let mut stream = c.do_get(ep.ticket.expect("a ticket")).await?;
        while let Some(b) = stream.next().await {
            out.push(b?);
        }
    }
    Ok(out)
}

fn csv(batches: &[RecordBatch]) -> String {
    let mut out = Vec::new();
    lakecap::output::write(&mut out, batches, lakecap::output::Format::Csv).unwrap();
    String::from_utf8(out).unwrap()
}

fn sample_lake(dir: &Path) {
    let o = lakecap(&["sample-lake", "lake", "--rows", "30", "--seed", "4"], dir);
    assert!(o.status.success(), "{}", text(&o).1);
}

const CREATE: &str = "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION 'lake/'";
const QUERY: &str = "SELECT key, phash(img) AS h, dhash(img) AS d, image_error(img) AS e, \
                     length(alt) AS n FROM lake ORDER BY key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_as_the_cli_does_and_keeps_sessions_apart() {
    let dir = tempfile::tempdir().unwrap();
    sample_lake(dir.path());
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    let root = dir.path().to_str().unwrap();
    let server = start(&["--root", root], dir.path());
    let mut a = client(&server.addr).await;
    query(&mut a, CREATE).await.unwrap();
    let served = csv(&query(&mut a, QUERY).await.unwrap());
    let cli = lakecap(
        &["sql", &format!("{CREATE}; {QUERY}"), "-f", "csv"],
        dir.path(),
    );
    assert!(cli.status.success(), "{}", text(&cli).1);
    assert_eq!(served, text(&cli).0, "the server's rows are the CLI's");
    assert!(served.lines().count() == 31, "{served}");

    // SET stays in its connection; tables too.
    query(&mut a, "SET lakecap.on_error = 'fail'")
        .await
        .unwrap();
    let mut b = client(&server.addr).await;
    let show = |c: &mut FlightSqlServiceClient<Channel>| {
        let mut c = c.clone();
        async move { csv(&query(&mut c, "SHOW lakecap.on_error").await.unwrap()) }
    };
    assert!(show(&mut a).await.contains("fail"));
    assert!(show(&mut b).await.contains("null"));
    assert!(
        query(&mut b, "SELECT count(*) FROM lake").await.is_err(),
        "b has no table lake"
    );

    // Prepared statements, updates and what clients ask first.
    let mut p = a
        .prepare("SELECT count(*) AS n FROM lake".into(), None)
        .await
        .unwrap();
    for _ in 0..2 {
        let info = p.execute().await.unwrap();
        let mut s = a
            .do_get(info.endpoint[0].ticket.clone().unwrap())
            .await
            .unwrap();
        let batch = s.next().await.unwrap().unwrap();
        assert_eq!(csv(&[batch]), "n\n30\n");
    }
    p.close().await.unwrap();
    // Parameter values bound to `$1`: the same count as the literal query.
    let mut p = a
        .prepare(
            "SELECT count(*) AS n FROM lake WHERE length(alt) > $1".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(p.parameter_schema().unwrap().field(0).name(), "$1");
    for min in [5i64, 40] {
        let values = arrow::array::Int64Array::from(vec![min]);
        let bound = RecordBatch::try_from_iter([("$1", Arc::new(values) as _)]).unwrap();
        p.set_parameters(bound).unwrap();
        let info = p.execute().await.unwrap();
        let mut s = a
            .do_get(info.endpoint[0].ticket.clone().unwrap())
            .await
            .unwrap();
        let got = csv(&[s.next().await.unwrap().unwrap()]);
        let sql = format!("SELECT count(*) AS n FROM lake WHERE length(alt) > {min}");
        assert_eq!(got, csv(&query(&mut a, &sql).await.unwrap()), "$1 = {min}");
    }
    p.close().await.unwrap();
    // A prepared update runs once per row of parameter values.
    query(&mut a, "CREATE TABLE t (x BIGINT)").await.unwrap();
    let mut ins = a
        .prepare("INSERT INTO t VALUES ($1)".into(), None)
        .await
        .unwrap();
    let values = arrow::array::Int64Array::from(vec![3, 4]);
    ins.set_parameters(RecordBatch::try_from_iter([("$1", Arc::new(values) as _)]).unwrap())
        .unwrap();
    assert_eq!(ins.execute_update().await.unwrap(), 2);
    let sum = csv(&query(&mut a, "SELECT sum(x) AS s FROM t").await.unwrap());
    assert_eq!(sum, "s\n7\n");
    // Client SQL is never substituted from the server's environment.
    let home = csv(&query(&mut a, "SELECT '${HOME}' AS h").await.unwrap());
    assert_eq!(home, "h\n${HOME}\n");
    assert_eq!(
        a.execute_update(
            "COPY (SELECT key FROM lake) TO 'keys.csv' STORED AS CSV".into(),
            None
        )
        .await
        .unwrap(),
        30
    );
    assert!(dir.path().join("keys.csv").exists());
    let info = a
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .unwrap();
    let batches = a
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let batches: Vec<_> = batches.map(|b| b.unwrap()).collect().await;
    assert!(format!("{batches:?}").contains("lakecap"));
    let info = a
        .get_tables(CommandGetTables {
            include_schema: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = a
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let tables: Vec<_> = tables.map(|b| b.unwrap()).collect().await;
    assert!(csv(&tables).contains(",lake,TABLE,"), "{}", csv(&tables));
    let info = a.get_catalogs().await.unwrap();
    assert!(!info.endpoint.is_empty());
    let info = a.get_xdbc_type_info(Default::default()).await.unwrap();
    let types = a
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let types: Vec<_> = types.map(|b| b.unwrap()).collect().await;
    assert!(format!("{types:?}").contains("VARCHAR"));

    // Paths outside the root are refused, to the client and in the log.
    let outside_abs = outside.path().display().to_string();
    for loc in [
        "../",
        "escape/",
        outside_abs.as_str(),
        "file:///etc/",
        "s3://bucket/x/",
    ] {
        let sql = format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{loc}'");
        let e = query(&mut a, &sql).await.unwrap_err().to_string();
        assert!(e.contains("LOCATION"), "{loc}: {e}");
    }
    // A model given as a path outside the root is not loaded, however the
    // path was spelled or computed.
    std::fs::create_dir(outside.path().join("m")).unwrap();
    std::fs::write(outside.path().join("m/config.json"), "{}").unwrap();
    for arg in [
        format!("'{outside_abs}/m'"),
        format!("concat('{}', '/m')", outside_abs),
        "'escape/m'".to_string(),
    ] {
        let sql = format!("SELECT embed_text('a dog', {arg}) AS v");
        let e = query(&mut a, &sql).await.unwrap_err().to_string();
        let refused = e.contains("outside the server's root") || e.contains("string literal");
        assert!(refused, "{arg}: {e}");
    }
    let e = query(&mut a, "COPY (SELECT 1) TO '../x.csv' STORED AS CSV")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("COPY"), "{e}");
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .contains("refused user anonymous")
    );
    // Bad SQL is an error naming the problem, as in the CLI.
    let e = query(&mut a, "SELEC 1").await.unwrap_err().to_string();
    assert!(e.contains("SELEC"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_requires_credentials_when_it_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut passwd = Command::new(env!("CARGO_BIN_EXE_lakecap"))
        .args(["passwd", "ana"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    passwd
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let line = passwd.wait_with_output().unwrap();
    assert!(line.status.success());
    std::fs::write(dir.path().join("users"), &line.stdout).unwrap();
    std::fs::write(dir.path().join("tokens"), "tok-0123456789abcdef\n").unwrap();
    let server = start(
        &["--users", "users", "--token-file", "tokens", "--read-only"],
        dir.path(),
    );
    let mut c = client(&server.addr).await;
    let e = query(&mut c, "SELECT 1").await.unwrap_err().to_string();
    assert!(e.contains("authorization"), "{e}");
    assert!(c.handshake("ana", "wrong horse").await.is_err());
    assert!(c.handshake("bob", "correct horse").await.is_err());
    c.handshake("ana", "correct horse").await.unwrap();
    assert_eq!(
        csv(&query(&mut c, "SELECT 1 AS one").await.unwrap()),
        "one\n1\n"
    );
    let mut t = client(&server.addr).await;
    t.set_token("tok-0123456789abcdef".into());
    assert_eq!(
        csv(&query(&mut t, "SELECT 2 AS two").await.unwrap()),
        "two\n2\n"
    );
    t.set_token("tok-wrong".into());
    assert!(query(&mut t, "SELECT 2").await.is_err());
    // Read-only: no writes, no server-level options.
    let e = query(&mut c, "COPY (SELECT 1) TO 'x.csv' STORED AS CSV")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = query(&mut c, "SET lakecap.device = 'cpu'")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lakecap.device"), "{e}");
    query(&mut c, "SET lakecap.on_error = 'fail'")
        .await
        .unwrap();
    assert!(server.log.lock().unwrap().contains("refused user ana"));

    // Without credentials only loopback may be served.
    let o = lakecap(&["serve", "--listen", "0.0.0.0:0"], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--users"), "{}", text(&o).1);

    // ADBC (Python) logs in with a user name and password: CI sets this.
    if let Ok(python) = std::env::var("LAKECAP_ADBC_PYTHON") {
        let script = format!(
            "import adbc_driver_flightsql.dbapi as f\n\
             c = f.connect('grpc://{}', db_kwargs={{'username': 'ana', 'password': 'correct horse'}})\n\
             cur = c.cursor(); cur.execute('SELECT 40 + 2 AS answer'); print(cur.fetchall())\n\
             cur.execute('SELECT $1 + 1 AS p', parameters=(41,)); print('param', cur.fetchall())\n\
             try:\n    f.connect('grpc://{}', db_kwargs={{'username': 'ana', 'password': 'nope'}}).cursor().execute('SELECT 1')\n\
             except Exception as e:\n    print('refused', type(e).__name__)\n",
            server.addr, server.addr
        );
        let o = Command::new(python).args(["-c", &script]).output().unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(
            out.contains("[(42,)]") && out.contains("refused"),
            "{out}{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_under_load_limits_and_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    sample_lake(dir.path());
    let server = start(&["--max-queries", "4"], dir.path());
    // 16 clients × 20 queries: no error, no lost rows.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let addr = server.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = client(&addr).await;
            query(&mut c, CREATE).await.unwrap();
            let mut latencies = Vec::new();
            for j in 0..20 {
                let t = Instant::now();
                let sql = format!("SELECT count(*) + {i} * 100 + {j} AS n FROM lake");
                let got = csv(&query(&mut c, &sql).await.unwrap());
                assert_eq!(got, format!("n\n{}\n", 30 + i * 100 + j));
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "load: 16 clients x 20 queries: {:.0} queries/s, p50 {:?}, p99 {:?}",
        320.0 / secs,
        latencies[latencies.len() / 2],
        p99
    );

    // Malformed requests: errors, and the server still answers.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let mut seed = 7u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for n in [0, 1, 7, 64, 1000] {
        let ticket = arrow_flight::Ticket::new(noise(n));
        assert!(raw.do_get(ticket).await.is_err());
        let desc = arrow_flight::FlightDescriptor::new_cmd(noise(n));
        assert!(raw.get_flight_info(desc).await.is_err());
        let action = arrow_flight::Action::new(String::from_utf8_lossy(&noise(n)), noise(n));
        assert!(raw.do_action(action).await.is_err());
    }
    let mut c = client(&server.addr).await;
    assert_eq!(
        csv(&query(&mut c, "SELECT 1 AS one").await.unwrap()),
        "one\n1\n"
    );
    drop(server);

    // A client that goes away mid-query frees its slot; a query past the
    // timeout is cancelled.
    let server = start(&["--max-queries", "1", "--query-timeout", "4s"], dir.path());
    const SLOW: &str = "SELECT count(*) FROM generate_series(1, 3000000000) a";
    {
        let mut gone = client(&server.addr).await;
        let info = gone.execute(SLOW.into(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let mut stream = gone.do_get(ticket).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    }
    let mut c = client(&server.addr).await;
    let t = Instant::now();
    assert_eq!(
        csv(&query(&mut c, "SELECT 1 AS one").await.unwrap()),
        "one\n1\n"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the slot was not freed: {:?}",
        t.elapsed()
    );
    let e = query(&mut c, SLOW).await.unwrap_err().to_string();
    assert!(e.contains("timeout"), "{e}");
}

/// TLS (rustls): a client that trusts the server's certificate queries; a
/// plaintext client gets nowhere. The certificate is made here by openssl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls() {
    use tonic::transport::{Certificate, ClientTlsConfig};
    let dir = tempfile::tempdir().unwrap();
    // A CA and a server certificate it signs (rustls refuses a CA as the
    // server's own certificate).
    let script = "set -e
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out server.csr
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \\
            -extfile ext.cnf -out cert.pem";
    let made = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir.path())
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: openssl could not make a certificate");
        return;
    }
    let server = start(
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
        dir.path(),
    );
    let port = server.addr.rsplit(':').next().unwrap();
    let pem = std::fs::read(dir.path().join("ca.pem")).unwrap();
    lakecap::serve::install_crypto_provider();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = FlightSqlServiceClient::new(channel);
    assert_eq!(
        csv(&query(&mut c, "SELECT 3 AS three").await.unwrap()),
        "three\n3\n"
    );
    let mut plain = client(&server.addr).await;
    assert!(query(&mut plain, "SELECT 3").await.is_err());
}
