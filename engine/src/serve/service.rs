//! The Flight SQL service: arrow-flight's `FlightSqlService` over lakecap
//! sessions.
//!
//! - **Sessions.** Each client connection (user and peer address: one gRPC
//!   channel is one TCP connection) gets its own [`Engine`], with every
//!   function and option; `SET lakecap.*` stays in it. Sessions idle for an
//!   hour are dropped.
//! - **Statements.** `GetFlightInfo` plans a statement for its schema; the
//!   ticket carries the statement itself, checked again when it runs (a
//!   client may forge tickets). `DoGet` runs it as the CLI does
//!   (`script::physical_plan`) and streams batches as they come. Prepared
//!   statements keep their SQL and bound parameter values (`$1`, …) in the
//!   session under a random handle.
//!   Updates (`DoPut` with `CommandStatementUpdate`) run and return the
//!   count of rows written, when the statement reports one.
//! - **Limits.** A statement waits for one of `--max-queries` slots (at most
//!   the query timeout, then `RESOURCE_EXHAUSTED`); planning and streaming
//!   together must end within the timeout (`DEADLINE_EXCEEDED`). The slot
//!   and the running plan belong to the response stream: a client that goes
//!   away drops it, which cancels the query and frees both.
//! - **Refusals** ([`Guard`], [`Auth`]) are a clear status to the client and
//!   a line on stderr with the user, the peer and the statement.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Auth;
use super::guard::Guard;
use super::metadata;
use crate::{Engine, EngineOptions, ProgressMode, script};

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;
type Batches = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static>>;

/// One client connection's engine and prepared statements.
struct Session {
    engine: Engine,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    last_used: Mutex<Instant>,
}

/// A prepared statement and the rows of parameter values bound to it
/// (`$1`, … per column): a query takes one row, an update runs once per row.
#[derive(Clone)]
struct Prepared {
    sql: String,
    rows: Vec<Vec<ScalarValue>>,
}

impl Prepared {
    /// The values a query runs with.
    fn query_params(&self) -> Result<&[ScalarValue], Status> {
        match &self.rows[..] {
            [] => Ok(&[]),
            [row] => Ok(row),
            _ => Err(Status::invalid_argument(
                "a query takes one row of parameter values",
            )),
        }
    }
}

/// Who asks, from where, in which session.
struct Caller {
    user: String,
    peer: String,
    session: Arc<Session>,
}

pub struct LakecapFlightSql {
    pub(super) auth: Auth,
    pub(super) guard: Guard,
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    pub(super) max_queries: usize,
    pub(super) timeout: Duration,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

/// Sessions unused this long are dropped.
const IDLE: Duration = Duration::from_secs(3600);

fn df_status(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

impl LakecapFlightSql {
    pub fn new(auth: Auth, guard: Guard, max_queries: usize, timeout: Duration) -> Self {
        LakecapFlightSql {
            auth,
            guard,
            slots: Arc::new(tokio::sync::Semaphore::new(max_queries.max(1))),
            max_queries: max_queries.max(1),
            timeout,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The caller of `req`, authenticated, with its session (made on first use).
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let peer = req
            .remote_addr()
            .map_or_else(|| "local".to_string(), |a| a.to_string());
        let user = self.auth.user(req.metadata()).inspect_err(|e| {
            eprintln!("lakecap serve: refused {peer}: {}", e.message());
        })?;
        let key = format!("{user}@{peer}");
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| {
            now.duration_since(*s.last_used.lock().unwrap_or_else(|p| p.into_inner())) < IDLE
        });
        let session = match sessions.get(&key) {
            Some(s) => Arc::clone(s),
            None => {
                let engine = Engine::with_options(EngineOptions {
                    progress: ProgressMode::Off,
                    ..Default::default()
                })
                .map_err(|e| Status::internal(format!("cannot start a session: {e:#}")))?;
                let s = Arc::new(Session {
                    engine,
                    prepared: Mutex::new(HashMap::new()),
                    last_used: Mutex::new(now),
                });
                sessions.insert(key, Arc::clone(&s));
                s
            }
        };
        *session.last_used.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(Caller {
            user,
            peer,
            session,
        })
    }

    /// The single statement of `sql`, parsed as written (no `${VAR}`
    /// substitution: a client's SQL never sees the server's environment)
    /// and checked by the guard; a refusal is logged.
    fn statement(
        &self,
        c: &Caller,
        sql: &str,
    ) -> Result<datafusion::sql::parser::Statement, Status> {
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| Status::invalid_argument(format!("SQL syntax error: {e}")))?;
        if statements.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "one statement per request, got {}",
                statements.len()
            )));
        }
        self.guard
            .check_statements(statements.iter())
            .map_err(|why| {
                eprintln!(
                    "lakecap serve: refused user {} at {}: {why}; statement: {}",
                    c.user,
                    c.peer,
                    script::snippet(sql)
                );
                Status::permission_denied(why)
            })?;
        Ok(statements.pop_front().expect("one statement"))
    }

    /// The logical plan of `sql` with `params` for its placeholders.
    async fn plan(
        &self,
        c: &Caller,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<LogicalPlan, Status> {
        let statement = self.statement(c, sql)?;
        let state = c.session.engine.ctx().state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(df_status)?;
        match params.is_empty() {
            true => Ok(plan),
            false => plan.with_param_values(params.to_vec()).map_err(df_status),
        }
    }

    /// The result schema of `sql`, planned but not run.
    async fn schema(
        &self,
        c: &Caller,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<Schema, Status> {
        Ok(self.plan(c, sql, params).await?.schema().as_arrow().clone())
    }

    /// A query slot, waiting at most the timeout for one.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(self.timeout, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Status::resource_exhausted(format!(
                "the server is busy: {} queries are running (--max-queries); try again later",
                self.max_queries
            ))),
        }
    }

    /// Runs `sql`: its schema and batches, ending at the deadline. The
    /// slot and the query live as long as the stream.
    async fn execute(
        &self,
        c: &Caller,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<(SchemaRef, Batches), Status> {
        let plan = self.plan(c, sql, params).await?;
        let permit = self.slot().await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timeout = self.timeout;
        let late = move |what: &str| {
            Status::deadline_exceeded(format!(
                "the query ran past the timeout ({}){what}",
                humantime::format_duration(timeout)
            ))
        };
        let ctx = c.session.engine.ctx().clone();
        let (schema, stream) = tokio::time::timeout_at(deadline, async move {
            let (plan, task) = script::physical_plan_of(&ctx, plan, ProgressMode::Off).await?;
            Ok::<_, datafusion::error::DataFusionError>((
                plan.schema(),
                execute_stream(plan, task)?,
            ))
        })
        .await
        .map_err(|_| late(""))?
        .map_err(df_status)?;
        // The query runs in its own task, which owns the slot and hands
        // batches over a short channel: a client that goes away (the
        // receiver drops) or stops reading (sends block) past the deadline
        // ends the task, cancelling the query and freeing the slot.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, FlightError>>(2);
        tokio::spawn(async move {
            let _slot = permit;
            let mut stream = stream;
            loop {
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline, stream.next()) => next,
                    // The client went away while a batch was being computed.
                    _ = tx.closed() => break,
                };
                let item = match next {
                    Ok(Some(Ok(b))) => Ok(b),
                    Ok(Some(Err(e))) => Err(FlightError::Tonic(Box::new(df_status(e)))),
                    Ok(None) => break,
                    Err(_) => Err(FlightError::Tonic(Box::new(late(" and was cancelled")))),
                };
                let last = item.is_err();
                let sent = tokio::time::timeout_at(deadline, tx.send(item)).await;
                if last || !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
        });
        let batches = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok((schema, Box::pin(batches)))
    }

    /// [`Self::execute`] as Flight data.
    async fn run(
        &self,
        c: &Caller,
        sql: &str,
        params: &[ScalarValue],
    ) -> Result<Response<FlightStream>, Status> {
        let (schema, batches) = self.execute(c, sql, params).await?;
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    /// Runs `sql` to the end: the rows it reports writing (the `count`
    /// column of DML and COPY), else 0.
    async fn update(&self, c: &Caller, sql: &str, params: &[ScalarValue]) -> Result<i64, Status> {
        let (_, batches) = self.execute(c, sql, params).await?;
        let batches: Vec<RecordBatch> = batches.try_collect().await.map_err(Status::from)?;
        let count = batches
            .iter()
            .filter_map(|b| {
                b.column_by_name("count")?
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .cloned()
            })
            .map(|a| a.iter().flatten().sum::<u64>())
            .sum::<u64>();
        Ok(count as i64)
    }
}

impl LakecapFlightSql {
    /// The FlightInfo of a metadata command, whose ticket is the command.
    fn metadata_info(
        &self,
        request: Request<FlightDescriptor>,
        query: &impl ProstMessageExt,
        schema: &Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        info(schema, query.as_any().encode_to_vec(), request.into_inner())
    }
}

/// The rows of parameter values a client sent (`$1`, `$2`, … per column).
async fn param_rows(data: PeekableFlightDataStream) -> Result<Vec<Vec<ScalarValue>>, Status> {
    // A command without values comes as a message with no IPC header.
    let messages = data.try_filter(|m| futures::future::ready(!m.data_header.is_empty()));
    let stream = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        messages.map_err(FlightError::from),
    );
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(Status::from)?;
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let row = b
                .columns()
                .iter()
                .map(|col| ScalarValue::try_from_array(col, r))
                .collect::<datafusion::error::Result<Vec<_>>>()
                .map_err(df_status)?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// `schema` as an IPC message (prepared statements' schemas).
fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// The placeholders of `plan` (`$1`, `$2`, …) as fields in order, typed
/// where DataFusion inferred a type (else Null: any value).
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan.get_parameter_types().map_err(df_status)?;
    let mut names: Vec<&String> = types.keys().collect();
    names.sort_by_key(|n| {
        (
            n.trim_start_matches('$')
                .parse::<usize>()
                .unwrap_or(usize::MAX),
            n.to_string(),
        )
    });
    Ok(Schema::new(
        names
            .into_iter()
            .map(|n| Field::new(n, types[n].clone().unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    ))
}

/// A FlightInfo whose one endpoint's ticket is `ticket`.
fn info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    Ok(Response::new(
        FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor),
    ))
}

/// One batch as a Flight stream.
fn one_batch(
    batch: datafusion::error::Result<RecordBatch>,
) -> Result<Response<FlightStream>, Status> {
    let batch = batch.map_err(df_status)?;
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

/// A statement handle of the tickets this server hands out.
fn ticket_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("malformed statement ticket"))
}

impl LakecapFlightSql {
    /// Prepared statement `handle` of the caller's session.
    fn prepared(&self, c: &Caller, handle: &[u8]) -> Result<Prepared, Status> {
        let p = c.session.prepared.lock().unwrap_or_else(|p| p.into_inner());
        p.get(handle)
            .cloned()
            .ok_or_else(|| Status::not_found("no such prepared statement in this session"))
    }
}

#[tonic::async_trait]
impl FlightSqlService for LakecapFlightSql {
    type FlightService = LakecapFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let peer = request
            .remote_addr()
            .map_or_else(|| "local".into(), |a| a.to_string());
        let (user, token) = self.auth.handshake(request.metadata()).inspect_err(|e| {
            eprintln!(
                "lakecap serve: handshake refused for {peer}: {}",
                e.message()
            );
        })?;
        eprintln!("lakecap serve: {user} connected from {peer}");
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if !token.is_empty() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("token header"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let c = self.caller(&request)?;
        let schema = self.schema(&c, &query.query, &[]).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let c = self.caller(&request)?;
        self.run(&c, ticket_sql(&ticket.statement_handle)?, &[])
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let c = self.caller(&request)?;
        let plan = self.plan(&c, &query.query, &[]).await?;
        let schema = plan.schema().as_arrow().clone();
        let parameters = parameter_schema(&plan)?;
        let mut handle = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut handle);
        let handle: Vec<u8> = handle
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes();
        c.session
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                handle.clone(),
                Prepared {
                    sql: query.query,
                    rows: Vec::new(),
                },
            );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: ipc_schema(&schema)?,
            parameter_schema: match parameters.fields().is_empty() {
                true => Default::default(),
                false => ipc_schema(&parameters)?,
            },
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let c = self.caller(&request)?;
        let mut p = c.session.prepared.lock().unwrap_or_else(|p| p.into_inner());
        p.remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let c = self.caller(&request)?;
        let p = self.prepared(&c, &cmd.prepared_statement_handle)?;
        let schema = self.schema(&c, &p.sql, p.query_params()?).await?;
        info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let c = self.caller(&request)?;
        let p = self.prepared(&c, &cmd.prepared_statement_handle)?;
        self.run(&c, &p.sql, p.query_params()?).await
    }

    /// Binds parameter values: rows whose columns are `$1`, `$2`, … (an
    /// empty binding, which clients send for statements without parameters,
    /// keeps what was bound).
    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let c = self.caller(&request)?;
        let handle = cmd.prepared_statement_handle;
        self.prepared(&c, &handle)?;
        let rows = param_rows(request.into_inner()).await?;
        if !rows.is_empty() {
            let mut p = c.session.prepared.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = p.get_mut(handle.as_ref()) {
                p.rows = rows;
            }
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    /// A prepared update: once per row of parameter values in the request,
    /// else per row bound before (the counts summed), else once.
    async fn do_put_prepared_statement_update(
        &self,
        cmd: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let c = self.caller(&request)?;
        let p = self.prepared(&c, &cmd.prepared_statement_handle)?;
        let mut rows = param_rows(request.into_inner()).await?;
        if rows.is_empty() {
            rows = p.rows;
        }
        if rows.is_empty() {
            return self.update(&c, &p.sql, &[]).await;
        }
        let mut total = 0;
        for params in rows {
            total += self.update(&c, &p.sql, &params).await?;
        }
        Ok(total)
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let c = self.caller(&request)?;
        self.update(&c, &cmd.query, &[]).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let c = self.caller(&request)?;
        one_batch(metadata::catalogs(c.session.engine.ctx(), query))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let c = self.caller(&request)?;
        one_batch(metadata::schemas(c.session.engine.ctx(), query))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let c = self.caller(&request)?;
        one_batch(metadata::tables(c.session.engine.ctx(), query).await)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(metadata::table_types(query))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let data = metadata::sql_info(self.guard.read_only);
        let schema = query.clone().into_builder(data).schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        let data = metadata::sql_info(self.guard.read_only);
        one_batch(query.into_builder(data).build().map_err(df_status_arrow))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(metadata::xdbc_types()).schema();
        self.metadata_info(request, &query, &schema)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(
            query
                .into_builder(metadata::xdbc_types())
                .build()
                .map_err(df_status_arrow),
        )
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request)?;
        Err(Status::invalid_argument(format!(
            "unknown ticket type {}",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn df_status_arrow(e: impl std::fmt::Display) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(e.to_string())
}
