//! The `lakecap` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakecap::{Engine, EngineOptions, ProgressMode};

#[derive(Parser)]
#[command(
    name = "lakecap",
    version,
    about = "Curate image-caption lakes with SQL: dedup, filter, recaption, fuse"
)]
struct Cli {
    /// Options file (default: ./lakecap.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Never show progress.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Run queries on a lakecap cluster: its scheduler's df://HOST:PORT
    /// (default: `cluster` in lakecap.toml, else this process).
    #[arg(long, global = true, env = "LAKECAP_CLUSTER", value_name = "URL")]
    cluster: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run SQL given on the command line (one or more statements).
    Sql {
        sql: String,
        #[command(flatten)]
        out: cli::OutputArgs,
    },
    /// Run a SQL file: many statements, SET, CREATE EXTERNAL TABLE, COPY ... TO.
    Run {
        file: PathBuf,
        #[command(flatten)]
        out: cli::OutputArgs,
    },
    /// Interactive SQL shell with history.
    Shell {
        #[command(flatten)]
        out: cli::OutputArgs,
    },
    /// Write a realistic demo lake (real photos, generated images, known defects).
    SampleLake {
        dir: PathBuf,
        #[arg(long, default_value_t = 240)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// The main job on the embedded default: sample lake -> sql/demo.sql -> curated parquet + summary.
    Demo {
        /// Lake to curate; made with sample-lake if missing.
        #[arg(long, default_value = "sample_lake")]
        lake: PathBuf,
        /// Where the curated parquet goes.
        #[arg(long, default_value = "out/curated")]
        out: PathBuf,
        /// Rows of the sample lake, when it is made.
        #[arg(long, default_value_t = 240)]
        rows: usize,
    },
    /// Write one self-contained HTML report on a query, a .sql file or a lake:
    /// drop reasons, histograms, sampled thumbnails with captions, near-duplicate clusters.
    Report(cli::report::ReportArgs),
    /// Serve lakecap over Arrow Flight SQL (ADBC, JDBC, DBeaver, arrow-flight clients):
    /// a session per connection, users or tokens, TLS, --root confinement, --read-only.
    Serve(cli::serve::ServeArgs),
    /// Print a users-file line for `serve --users`: NAME:ARGON2-HASH of the password read from stdin.
    Passwd {
        /// The user name.
        name: String,
    },
    /// Process what is new in a lake: an incremental, exactly-once job (TOML job file).
    Refresh {
        job: PathBuf,
        /// Run again after this interval (e.g. 30m, 1h, 1d) until stopped.
        #[arg(long, value_name = "DURATION")]
        every: Option<String>,
        /// Run on a cron schedule (e.g. "0 * * * *", local time) until stopped.
        #[arg(long, value_name = "EXPR")]
        cron: Option<String>,
        /// Wait for a run that holds the output's lock instead of exiting.
        #[arg(long)]
        wait: bool,
    },
    /// Refresh jobs on this machine.
    Jobs {
        #[command(subcommand)]
        cmd: JobsCmd,
    },
    /// List lakecap's functions and options with their documentation.
    Functions,
    /// Models on this machine.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Scale out on Apache DataFusion Ballista: scheduler and executor processes.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// The scheduler: clients connect here (df://HOST:PORT), executors register here.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// An executor: runs tasks on one device (start one per GPU).
    Executor {
        /// The scheduler, HOST:PORT or df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Address to listen on and advertise to the scheduler.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Arrow Flight port (results and shuffle data).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// gRPC port (default: a free one).
        #[arg(long)]
        grpc_port: Option<u16>,
        /// Where models run: auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Tasks run at once (default: one per core).
        #[arg(long, default_value_t = 0)]
        concurrent_tasks: usize,
        /// Folder for shuffle files (default: a temporary one).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Executors (device, task slots, heartbeat) and running jobs.
    Status,
}

#[derive(Subcommand)]
enum JobsCmd {
    /// Each job's last run: when, version, status, rows, duration, errors.
    Status,
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Models found in lakecap's model home and the Hugging Face cache.
    List,
    /// Download ORG/NAME from the Hugging Face hub into lakecap's model home.
    Pull { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lakecap::tune_allocator();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = if cli.no_progress {
        ProgressMode::Off
    } else {
        ProgressMode::Auto
    };
    let engine = || {
        Engine::with_options(EngineOptions {
            config_file: cli.config.clone(),
            progress,
            cluster: cli.cluster.clone(),
            ..Default::default()
        })
    };
    match cli.cmd {
        Cmd::Sql { sql, out } => cli::run_sql(&engine()?, &sql, &out).await,
        Cmd::Run { file, out } => {
            let sql = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            cli::run_sql(&engine()?, &sql, &out).await
        }
        Cmd::Shell { out } => cli::shell::run(&engine()?, &out.defines, out.format).await,
        Cmd::SampleLake { dir, rows, seed } => cli::demo::sample_lake(&dir, rows, seed),
        Cmd::Demo { lake, out, rows } => cli::demo::run(&engine()?, &lake, &out, rows).await,
        Cmd::Report(args) => cli::report::run(&engine()?, args).await,
        Cmd::Serve(args) => cli::serve::run(args).await,
        Cmd::Passwd { name } => cli::serve::passwd(&name),
        Cmd::Refresh {
            job,
            every,
            cron,
            wait,
        } => {
            cli::refresh::run(
                engine,
                &job,
                every.as_deref(),
                cron.as_deref(),
                wait,
                progress,
            )
            .await
        }
        Cmd::Jobs {
            cmd: JobsCmd::Status,
        } => cli::refresh::jobs_status(),
        Cmd::Functions => cli::print_functions(&engine()?).await,
        Cmd::Models {
            cmd: ModelsCmd::List,
        } => cli::models::list(),
        Cmd::Models {
            cmd: ModelsCmd::Pull { id },
        } => cli::models::pull(&id).await,
        Cmd::Cluster { cmd } => cluster(cmd, engine).await,
    }
}

/// Starts a scheduler or an executor, or reports on the session's cluster.
async fn cluster(
    cmd: ClusterCmd,
    engine: impl Fn() -> anyhow::Result<Engine>,
) -> anyhow::Result<()> {
    use lakecap::cluster;
    match cmd {
        ClusterCmd::Scheduler { bind, port } => {
            cluster::scheduler::run(&cluster::scheduler::SchedulerArgs { bind, port }).await
        }
        ClusterCmd::Executor {
            scheduler,
            bind,
            port,
            grpc_port,
            device,
            concurrent_tasks,
            work_dir,
        } => {
            cluster::executor::run(&cluster::executor::ExecutorArgs {
                scheduler: cluster::ClusterUrl::parse(&scheduler)?,
                bind,
                port,
                grpc_port,
                device,
                concurrent_tasks,
                work_dir: work_dir.map(|d| d.display().to_string()),
            })
            .await
        }
        ClusterCmd::Status => {
            let engine = engine()?;
            let url = engine.cluster().ok_or_else(|| {
                anyhow::anyhow!(
                    "which cluster? pass --cluster df://HOST:PORT, set LAKECAP_CLUSTER or put cluster = \"df://HOST:PORT\" in lakecap.toml"
                )
            })?;
            print!("{}", cluster::status::report(url).await?);
            Ok(())
        }
    }
}
