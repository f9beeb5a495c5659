//! The lakecap engine: a DataFusion session with everything lakecap adds.
//!
//! - [`Engine`]: a ready `SessionContext` with every lakecap function, the
//!   `lakecap.*` options ([`LakecapOptions`], from `lakecap.toml`, the
//!   environment and `SET`), object stores created on demand from URLs
//!   ([`stores::LakeStoreRegistry`]) and counted warnings ([`Diagnostics`]).
//!   [`Engine::run_script`] runs many statements with `${VAR}` substitution
//!   and progress ([`progress`]).
//! - [`register`]: installs lakecap into a session you built yourself.
//! - [`sample_lake`]: a realistic, deterministic demo lake with known defects.
//! - [`refresh`]: incremental, exactly-once jobs (`lakecap refresh`) that
//!   write Delta tables (readable as `STORED AS DELTATABLE`) or manifest-
//!   committed parquet.
//! - [`report`]: a self-contained HTML report on a query's result or a lake
//!   (`lakecap report`).
//! - [`serve`]: lakecap over Arrow Flight SQL (`lakecap serve`), one session
//!   per client connection, with authentication, TLS and path confinement.
//! - [`cluster`]: the same SQL on Apache DataFusion Ballista: scheduler and
//!   executor processes, and [`Engine::remote`] for clients.

pub mod cluster;
pub mod config;
pub mod progress;
pub mod refresh;
pub mod report;
pub mod sample_lake;
pub mod script;
pub mod serve;
pub mod stores;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use lakecap_models::tune_allocator;
pub use lakecap_udfs::{
    Diagnostics, LakecapOptions, OnError, WarningCount, documentation, scalar_functions,
};
pub use progress::ProgressMode;
pub use script::{StatementOutput, Vars};

/// Installs lakecap's functions and options into an existing session and
/// returns the diagnostics its functions report into. Object stores for
/// `s3://`-style URLs need [`stores::LakeStoreRegistry`] in the session's
/// runtime (as [`Engine`] sets up); local paths work everywhere.
pub fn register(ctx: &SessionContext) -> Arc<Diagnostics> {
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        if options.extensions.get::<LakecapOptions>().is_none() {
            options.extensions.insert(LakecapOptions::default());
        }
    }
    install(ctx)
}

/// Functions, diagnostics and the Delta table factory, for a session that
/// already has the options extension.
fn install(ctx: &SessionContext) -> Arc<Diagnostics> {
    let diag = Arc::new(Diagnostics::default());
    install_with(ctx, &diag);
    diag
}

/// [`install`], reporting into `diag`.
fn install_with(ctx: &SessionContext, diag: &Arc<Diagnostics>) {
    ctx.state_ref().write().table_factories_mut().insert(
        "DELTATABLE".into(),
        Arc::new(deltalake::delta_datafusion::DeltaTableFactory {}),
    );
    lakecap_udfs::register_all(ctx, diag);
}

/// A runtime whose object stores are made on demand from URLs (`s3://`,
/// `gs://`, `az://`, `http(s)://`) from this process's environment.
fn lake_runtime() -> Result<Arc<RuntimeEnv>> {
    Ok(RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(stores::LakeStoreRegistry::new()))
        .build_arc()?)
}

/// How to build an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// A `lakecap.toml`; when `None`, `./lakecap.toml` is read if present.
    pub config_file: Option<PathBuf>,
    /// Skip reading `LAKECAP_*` environment variables.
    pub ignore_env: bool,
    /// Progress display for [`Engine::run_script`].
    pub progress: ProgressMode,
    /// Run queries on the Ballista scheduler at this URL (`df://HOST:PORT`)
    /// instead of in this process; when `None`, `cluster` in the config
    /// file, if any.
    pub cluster: Option<String>,
}

/// A DataFusion session with lakecap installed.
pub struct Engine {
    ctx: SessionContext,
    diagnostics: Arc<Diagnostics>,
    progress: ProgressMode,
    cluster: Option<cluster::ClusterUrl>,
}

impl Engine {
    /// Defaults, `./lakecap.toml` if present, and the environment.
    pub fn new() -> Result<Self> {
        Self::with_options(EngineOptions::default())
    }

    /// A session in this process, unless `opts` (or the config file) names
    /// a cluster: then see [`Engine::remote`].
    pub fn with_options(opts: EngineOptions) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(LakecapOptions::default());
        let file = opts.config_file.clone().or_else(|| {
            let default = PathBuf::from("lakecap.toml");
            default.is_file().then_some(default)
        });
        let mut cluster = None;
        if let Some(path) = &file {
            cluster = config::apply_file(&mut config, path)?;
        }
        if !opts.ignore_env {
            config::apply_env(&mut config, std::env::vars())?;
        }
        let runtime = lake_runtime()?;
        let cluster = match opts.cluster.or(cluster).filter(|c| !c.is_empty()) {
            None => None,
            Some(url) => Some(cluster::ClusterUrl::parse(&url)?),
        };
        let ctx = match &cluster {
            None => SessionContext::new_with_config_rt(config, runtime),
            Some(url) => {
                url.check_reachable()?;
                SessionContext::new_with_state(cluster::client_state(url, config, runtime)?)
            }
        };
        let diagnostics = install(&ctx);
        Ok(Self {
            ctx,
            diagnostics,
            progress: opts.progress,
            cluster,
        })
    }

    /// A session whose queries run on the Ballista scheduler at `url`
    /// (`df://HOST:PORT`, started by `lakecap cluster scheduler`), with
    /// defaults, `./lakecap.toml` if present, and the environment. Tables
    /// and settings live here and travel with each query; warnings are
    /// counted on the executors (their stderr).
    pub fn remote(url: &str) -> Result<Self> {
        Self::with_options(EngineOptions {
            cluster: Some(url.to_string()),
            ..Default::default()
        })
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    /// The cluster this session's queries run on, if any.
    pub fn cluster(&self) -> Option<&cluster::ClusterUrl> {
        self.cluster.as_ref()
    }

    pub fn diagnostics(&self) -> &Arc<Diagnostics> {
        &self.diagnostics
    }

    /// The session's current `lakecap.*` options.
    pub fn options(&self) -> LakecapOptions {
        LakecapOptions::from_config(self.ctx.state().config_options())
    }

    /// Runs every statement of `sql` (after `${VAR}` substitution) and returns their outputs.
    pub async fn run_script(&self, sql: &str, vars: &Vars) -> Result<Vec<StatementOutput>> {
        let mut outputs = Vec::new();
        self.run_script_with(sql, vars, |o| {
            outputs.push(o);
            Ok(())
        })
        .await?;
        Ok(outputs)
    }

    /// Runs every statement of `sql`, handing each output to `each` as soon as it is done.
    pub async fn run_script_with(
        &self,
        sql: &str,
        vars: &Vars,
        each: impl FnMut(StatementOutput) -> Result<()>,
    ) -> Result<()> {
        script::run(&self.ctx, &self.diagnostics, self.progress, sql, vars, each).await
    }

    /// Runs one or more statements and returns the last one's rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        Ok(self
            .run_script(sql, &Vars::default())
            .await?
            .pop()
            .map(|o| o.batches)
            .unwrap_or_default())
    }
}
