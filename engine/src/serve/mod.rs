//! `lakecap serve`: lakecap over Arrow Flight SQL, for notebooks, BI tools
//! and services in any language (ADBC, JDBC, arrow-flight clients).
//!
//! - [`service`]: arrow-flight's `FlightSqlService` over one lakecap session
//!   per client connection: statements and prepared statements, updates,
//!   `GetSqlInfo`, catalogs, schemas, tables, table types and
//!   `XdbcTypeInfo`; query slots and timeouts.
//! - [`auth`]: users with argon2 hashes and the Basic→Bearer handshake, or
//!   static bearer tokens.
//! - [`guard`]: `--root` confinement of every path a statement reads or
//!   writes, `--read-only`.
//! - [`metadata`]: the server's facts and the session's catalog for clients.
//!
//! Without users or tokens the server only binds to loopback and says so;
//! TLS is rustls through tonic.

pub mod auth;
pub mod guard;
mod metadata;
mod service;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::{Auth, hash_password};
pub use guard::Guard;
pub use service::LakecapFlightSql;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub users: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// Every path a statement names must stay inside it; also the working
    /// folder relative paths resolve against.
    pub root: Option<PathBuf>,
    /// URL prefixes statements may name under `root`.
    pub allow_urls: Vec<String>,
    pub read_only: bool,
    pub max_queries: usize,
    pub query_timeout: Duration,
}

/// Makes ring rustls's process-wide crypto provider: the dependency tree
/// enables both of rustls's providers, and then rustls picks neither. For
/// servers and for TLS clients in the same process; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves until `shutdown` resolves; `ready` gets the bound address (the
/// port when `listen` asked for port 0).
pub async fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let auth = Auth::load(opts.users.as_deref(), opts.token_file.as_deref())?;
    if !auth.enabled() && !opts.listen.ip().is_loopback() {
        bail!(
            "refusing to serve {} without authentication: give --users or --token-file, or listen on loopback",
            opts.listen
        );
    }
    // Files named on the command line are read before --root moves the
    // working folder.
    let mut builder = Server::builder();
    if let Some((cert, key)) = &opts.tls {
        install_crypto_provider();
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .context("TLS configuration")?;
    }
    let root = match &opts.root {
        Some(r) => {
            let r = r
                .canonicalize()
                .with_context(|| format!("--root {}", r.display()))?;
            std::env::set_current_dir(&r).with_context(|| format!("--root {}", r.display()))?;
            lakecap_models::hub::confine_paths_to(r.clone());
            Some(r)
        }
        None => None,
    };
    let guard = Guard {
        root,
        allow_urls: opts.allow_urls.clone(),
        read_only: opts.read_only,
    };
    let service = LakecapFlightSql::new(auth, guard, opts.max_queries, opts.query_timeout);
    let enabled = service.auth.enabled();
    // No Nagle delay on small replies (a cheap query is one small batch).
    let incoming = TcpIncoming::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    eprintln!(
        "lakecap serve: Flight SQL on {}://{addr}{}{}{}",
        if opts.tls.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        },
        if enabled {
            ""
        } else {
            " (no authentication: loopback only)"
        },
        if opts.read_only { ", read-only" } else { "" },
        opts.root
            .as_ref()
            .map(|r| format!(", root {}", r.display()))
            .unwrap_or_default(),
    );
    ready(addr);
    builder
        .add_service(FlightServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("Flight SQL server")
}
