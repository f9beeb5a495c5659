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

pub mod config;
pub mod progress;
pub mod refresh;
pub mod sample_lake;
pub mod script;
pub mod stores;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
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
    ctx.state_ref().write().table_factories_mut().insert(
        "DELTATABLE".into(),
        Arc::new(deltalake::delta_datafusion::DeltaTableFactory {}),
    );
    let diag = Arc::new(Diagnostics::default());
    lakecap_udfs::register_all(ctx, &diag);
    diag
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
}

/// A DataFusion session with lakecap installed.
pub struct Engine {
    ctx: SessionContext,
    diagnostics: Arc<Diagnostics>,
    progress: ProgressMode,
}

impl Engine {
    /// Defaults, `./lakecap.toml` if present, and the environment.
    pub fn new() -> Result<Self> {
        Self::with_options(EngineOptions::default())
    }

    pub fn with_options(opts: EngineOptions) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(LakecapOptions::default());
        match &opts.config_file {
            Some(path) => config::apply_file(&mut config, path)?,
            None => {
                let default = PathBuf::from("lakecap.toml");
                if default.is_file() {
                    config::apply_file(&mut config, &default)?;
                }
            }
        }
        if !opts.ignore_env {
            config::apply_env(&mut config, std::env::vars())?;
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(stores::LakeStoreRegistry::new()))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let diagnostics = install(&ctx);
        Ok(Self {
            ctx,
            diagnostics,
            progress: opts.progress,
        })
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
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
