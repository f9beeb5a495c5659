//! `lakecap cluster executor`: Ballista's executor running lakecap's
//! functions on one device.
//!
//! One executor per GPU (`--device cuda:N`) is the deployment to use: an
//! executor loads each model once, on its device, and keeps it warm across
//! tasks and queries (the model registry is per process). The device given
//! here wins over any `lakecap.device` a client sends. Rows that functions
//! turn into NULL are counted here and reported on this process's stderr,
//! not the client's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ballista_core::JobId;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use lakecap_models::runtime::Device;
use lakecap_udfs::refused_options;

use super::{
    ClusterUrl, HEARTBEAT, MAX_MESSAGE_BYTES, codec::LakecapLogicalCodec, process_config,
    process_state,
};
use crate::Diagnostics;

/// How an executor starts.
#[derive(Debug, Clone)]
pub struct ExecutorArgs {
    pub scheduler: ClusterUrl,
    /// Address to listen on and to advertise to the scheduler.
    pub bind: String,
    /// Arrow Flight port (shuffle data and results).
    pub port: u16,
    /// gRPC port; a free one when `None`.
    pub grpc_port: Option<u16>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Tasks run at once; 0: one per core.
    pub concurrent_tasks: usize,
    /// Shuffle files; a temporary folder when `None`.
    pub work_dir: Option<String>,
}

/// Runs the executor until the process is stopped.
pub async fn run(args: &ExecutorArgs) -> Result<()> {
    let (device, why) = Device::parse(&args.device).context("--device")?;
    let device = match device {
        Device::Cpu(_) => "cpu".to_string(),
        Device::Cuda(n, _) => format!("cuda:{n}"),
    };
    if let Some(why) = why {
        eprintln!("lakecap executor: --device auto runs models on the CPU: {why}");
    }
    let grpc_port = match args.grpc_port {
        Some(p) => p,
        None => free_port(&args.bind)?,
    };
    let id = format!("{device}@{}:{}", args.bind, args.port);
    let runtime = crate::lake_runtime()?;
    let diag = Arc::new(Diagnostics::default());
    let config_device = device.clone();
    let state = process_state(process_config(Some(&device)), Arc::clone(&runtime), &diag);
    let work_dir = args.work_dir.clone();
    let opts = ExecutorProcessConfig {
        executor_id: id.clone(),
        bind_host: args.bind.clone(),
        external_host: Some(args.bind.clone()),
        port: args.port,
        grpc_port,
        scheduler_host: args.scheduler.host.clone(),
        scheduler_port: args.scheduler.port,
        scheduler_connect_timeout_seconds: 30,
        vcores: args.concurrent_tasks,
        work_dir: work_dir.clone(),
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES as u32,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES as u32,
        executor_heartbeat_interval_seconds: HEARTBEAT.as_secs(),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_config_producer: Some(Arc::new(move || process_config(Some(&config_device)))),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            // The shared object stores, with this executor's spill folder.
            let mut b = RuntimeEnvBuilder::from_runtime_env(&runtime);
            if let Some(dir) = &work_dir {
                b = b.with_temp_file_path(dir.clone());
            }
            b.build_arc()
        })),
        override_logical_codec: Some(Arc::new(LakecapLogicalCodec::default())),
        override_execution_engine: Some(Arc::new(CheckedEngine {
            inner: DefaultExecutionEngine::new(),
            name: format!("executor {id}"),
        })),
        ..Default::default()
    };
    report_warnings(id.clone(), diag);
    eprintln!(
        "lakecap executor {id} (models on {device}) serving on {}:{}, scheduler {}",
        args.bind, args.port, args.scheduler
    );
    start_executor_process(Arc::new(opts))
        .await
        .with_context(|| format!("executor {id} (scheduler {})", args.scheduler))
}

/// A port free on `host` now.
fn free_port(host: &str) -> Result<u16> {
    Ok(std::net::TcpListener::bind((host, 0))
        .with_context(|| format!("no free port on {host}"))?
        .local_addr()?
        .port())
}

/// Prints the warnings functions counted here every few seconds.
fn report_warnings(id: String, diag: Arc<Diagnostics>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            for w in diag.take() {
                eprintln!("lakecap executor {id}: {w}");
            }
        }
    });
}

/// DataFusion's stage execution, refusing a task whose `lakecap.*` settings
/// did not all apply here (Ballista only logs those at debug level).
struct CheckedEngine {
    inner: DefaultExecutionEngine,
    name: String,
}

impl ExecutionEngine for CheckedEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        partitions: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::common::Result<Arc<dyn QueryStageExecutor>> {
        refused_options(config.options(), &self.name)?;
        self.inner.create_query_stage_exec(
            job_id, stage_id, task_id, partitions, plan, work_dir, config,
        )
    }
}
