//! Running lakecap on a cluster of Apache DataFusion Ballista processes.
//!
//! - [`scheduler::run`] and [`executor::run`]: Ballista's scheduler and
//!   executor with every lakecap function, option and object store
//!   registered (`lakecap cluster scheduler|executor`).
//! - [`client_state`]: a session whose queries run on a scheduler
//!   (`lakecap --cluster df://HOST:PORT`, [`crate::Engine::remote`]).
//! - [`codec`]: what a client's plans carry that Ballista cannot encode
//!   itself: the tables of `CREATE TABLE … AS`.
//! - [`planner`]: table functions (`near_duplicates`, …) computed on the
//!   client before a plan leaves it.
//! - [`status`]: executors and running jobs, from the scheduler's REST API.
//!
//! Settings (`SET lakecap.*`) travel with every query; a process that
//! cannot apply one fails the query ([`lakecap_udfs::AppliedOptions`]).

pub mod codec;
pub mod executor;
pub mod planner;
pub mod scheduler;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use std::net::{TcpStream, ToSocketAddrs};

use anyhow::{Context, Result, anyhow, bail};
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::LogicalPlanNode;

use lakecap_udfs::{AppliedOptions, LakecapOptions};

use crate::Diagnostics;

/// The largest plan or task message the processes exchange. Tables made by
/// `CREATE TABLE … AS` travel inside the plans that read them.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// How often an executor reports to the scheduler, and how long the
/// scheduler waits for a report before it takes the executor for dead and
/// runs its tasks elsewhere (Ballista's defaults are 60 s and 180 s).
pub const HEARTBEAT: Duration = Duration::from_secs(3);
pub const EXECUTOR_TIMEOUT: Duration = Duration::from_secs(15);

/// A scheduler's address, `df://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub host: String,
    pub port: u16,
}

impl ClusterUrl {
    /// `df://HOST:PORT` (also `HOST:PORT`); the port defaults to 50050.
    pub fn parse(url: &str) -> Result<ClusterUrl> {
        let rest = url.strip_prefix("df://").unwrap_or(url);
        if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
            bail!("cluster URL '{url}': expected df://HOST:PORT");
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("cluster URL '{url}': port '{p}' is not a number"))?,
            ),
            None => (rest, 50050),
        };
        if host.is_empty() {
            bail!("cluster URL '{url}': expected df://HOST:PORT");
        }
        Ok(ClusterUrl {
            host: host.to_string(),
            port,
        })
    }

    /// The scheduler's gRPC and REST endpoint.
    pub fn http(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Fails with one line naming the URL when nothing answers there.
    pub fn check_reachable(&self) -> Result<()> {
        let fail = |why: String| anyhow!("cannot reach the lakecap scheduler at {self}: {why}");
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| fail(e.to_string()))?;
        let mut last = fail("the host has no address".into());
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(_) => return Ok(()),
                Err(e) => last = fail(e.to_string()),
            }
        }
        Err(last)
    }
}

impl std::fmt::Display for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

/// A session config as the scheduler and executors start from: Ballista's,
/// with lakecap's options as a process applies them (`device`: the
/// executor's, already parsed).
pub(crate) fn process_config(device: Option<&str>) -> SessionConfig {
    let options = AppliedOptions::new(LakecapOptions::default(), device)
        .expect("a device parsed when the process started");
    SessionConfig::new_with_ballista()
        .with_option_extension(options)
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
}

/// A lakecap session on a Ballista process (scheduler or executor side):
/// DataFusion's and Ballista's defaults, then lakecap's functions, whose
/// warnings go to `diag`.
pub(crate) fn process_state(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    diag: &Arc<Diagnostics>,
) -> SessionState {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::install_with(&ctx, diag);
    ctx.state()
}

/// A client session whose queries run on the scheduler at `url`: its plans
/// go out with lakecap's codec, and table functions are computed here first.
pub(crate) fn client_state(
    url: &ClusterUrl,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionState> {
    let codec: Arc<dyn datafusion_proto::logical_plan::LogicalExtensionCodec> =
        Arc::new(codec::LakecapLogicalCodec::default());
    let config = config
        .upgrade_for_ballista()
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
        .with_ballista_logical_extension_codec(Arc::clone(&codec));
    let ballista = ballista_core::planner::BallistaQueryPlanner::<LogicalPlanNode>::with_extension(
        url.http(),
        config.ballista_config(),
        codec,
    );
    let functions = lakecap_udfs::scalar_functions(
        &Arc::new(Diagnostics::default()),
        &LakecapOptions::default(),
    )
    .iter()
    .map(|f| f.name().to_string())
    .collect();
    let config = config.with_ballista_query_planner(Arc::new(planner::ClusterPlanner::new(
        Arc::new(ballista),
        functions,
    )));
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .build();
    Ok(state.upgrade_for_ballista(url.http())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_urls() {
        let u = ClusterUrl::parse("df://node-1:50070").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("node-1", 50070));
        assert_eq!(u.to_string(), "df://node-1:50070");
        assert_eq!(u.http(), "http://node-1:50070");
        assert_eq!(ClusterUrl::parse("10.0.0.2").unwrap().port, 50050);
        assert_eq!(ClusterUrl::parse("df://h:1/").unwrap().port, 1);
        for bad in ["df://", "df://h:port", "df://:5", "df://h:1/x"] {
            assert!(ClusterUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unreachable_scheduler_is_one_line_naming_the_url() {
        // A port just released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = ClusterUrl::parse(&format!("df://127.0.0.1:{port}")).unwrap();
        let e = url.check_reachable().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot reach the lakecap scheduler at df://127.0.0.1:{port}"
            )),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
