//! `lakecap serve` (Arrow Flight SQL) and `lakecap passwd` (a users-file line).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lakecap::serve::{ServeOptions, hash_password, serve};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; without --users or --token-file only loopback is allowed.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Users file: NAME:ARGON2-HASH lines (make them with `lakecap passwd NAME`);
    /// clients log in with a user name and password (Basic, then a bearer token).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Bearer tokens, one per line (at least 16 characters each).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Confine every LOCATION and COPY … TO path to this folder (relative
    /// paths resolve inside it); URLs only with --allow-url.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Object-store URL prefix statements may name under --root (repeatable).
    #[arg(long = "allow-url", value_name = "PREFIX")]
    allow_urls: Vec<String>,
    /// Refuse COPY … TO, INSERT and SET of server-level options.
    #[arg(long)]
    read_only: bool,
    /// Queries that run at once; the rest wait up to the query timeout.
    #[arg(long, default_value_t = 8)]
    max_queries: usize,
    /// A query still running after this is cancelled (e.g. 30s, 10m).
    #[arg(long, default_value = "10m")]
    query_timeout: humantime::Duration,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    if args.max_queries == 0 {
        bail!("--max-queries must be at least 1");
    }
    let opts = ServeOptions {
        listen: args.listen,
        tls: args.tls_cert.zip(args.tls_key),
        users: args.users,
        token_file: args.token_file,
        root: args.root,
        allow_urls: args.allow_urls,
        read_only: args.read_only,
        max_queries: args.max_queries,
        query_timeout: args.query_timeout.into(),
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("lakecap serve: stopping");
    };
    serve(opts, |addr| println!("listening on {addr}"), shutdown).await
}

/// Reads a password from stdin (one line) and prints `NAME:HASH` for a users file.
pub fn passwd(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(':') {
        bail!("a user name must be non-empty and without ':'");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.len() < 8 {
        bail!("a password must have at least 8 characters");
    }
    println!("{name}:{}", hash_password(password)?);
    Ok(())
}
