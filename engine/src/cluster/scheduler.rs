//! `lakecap cluster scheduler`: Ballista's scheduler, planning with every
//! lakecap function, option and object store.
//!
//! Clients send logical plans here; the scheduler plans them into stages
//! for the executors. It loads no model; a function that needs a model's
//! configuration to plan (its output size) reads it here too, so the
//! scheduler needs the same model directories as the executors.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::prelude::SessionConfig;
use lakecap_udfs::refused_options;

use super::{
    EXECUTOR_TIMEOUT, MAX_MESSAGE_BYTES, codec::LakecapLogicalCodec, process_config, process_state,
};
use crate::Diagnostics;

/// Where the scheduler listens.
#[derive(Debug, Clone)]
pub struct SchedulerArgs {
    pub bind: String,
    pub port: u16,
}

/// Runs the scheduler until the process is stopped.
pub async fn run(args: &SchedulerArgs) -> Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let runtime = crate::lake_runtime()?;
    let diag = Arc::new(Diagnostics::default());
    let config = SchedulerConfig {
        bind_host: args.bind.clone(),
        bind_port: args.port,
        external_host: args.bind.clone(),
        grpc_server_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_server_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_client_max_message_size: MAX_MESSAGE_BYTES as u32,
        executor_timeout_seconds: EXECUTOR_TIMEOUT.as_secs(),
        expire_dead_executor_interval_seconds: 2,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT.as_secs(),
        override_config_producer: Some(Arc::new(|| process_config(None))),
        override_session_builder: Some(Arc::new(move |config: SessionConfig| {
            refused_options(config.options(), "the scheduler")?;
            Ok(process_state(config, Arc::clone(&runtime), &diag))
        })),
        override_logical_codec: Some(Arc::new(LakecapLogicalCodec::default())),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("cannot start the scheduler")?;
    eprintln!("lakecap scheduler listening on df://{addr}");
    start_server(cluster, addr, Arc::new(config))
        .await
        .with_context(|| format!("scheduler on {addr}"))
}
