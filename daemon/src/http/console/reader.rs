//! Runs the console's read-only SQL on one shared daemon session (the daemon's DSN, role and
//! TLS settings, `db::connect_daemon`) under a short statement timeout. Each result becomes
//! JSON rows keyed by the column names, or a `ReadError` that says what went wrong; a role
//! without the rights (SQLSTATE 42501) is an answer to show, not a failure of the page.

use crate::config::{Config, PostgresConfig};
use crate::db;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

/// Longest a page's statement may run; pages stay responsive on a busy server.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(3);

pub type Rows = Vec<Map<String, Value>>;

/// Why a section has no rows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReadError {
    /// `denied` (the role lacks rights), `missing` (the extension or an object is missing),
    /// `unavailable` (no session), `failed` (anything else, e.g. the timeout).
    pub kind: &'static str,
    pub sqlstate: Option<String>,
    pub message: String,
}

impl ReadError {
    pub fn unavailable(message: String) -> ReadError {
        ReadError { kind: "unavailable", sqlstate: None, message }
    }

    pub fn of(error: &tokio_postgres::Error) -> ReadError {
        let code = error.code();
        let kind = match code {
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => "denied",
            Some(c)
                if *c == SqlState::UNDEFINED_FUNCTION
                    || *c == SqlState::UNDEFINED_TABLE
                    || *c == SqlState::INVALID_SCHEMA_NAME =>
            {
                "missing"
            }
            _ => "failed",
        };
        ReadError {
            kind,
            sqlstate: code.map(|c| c.code().to_string()),
            message: db::describe_pg(error),
        }
    }

    /// What the page says instead of the section.
    pub fn explain(&self) -> String {
        match self.kind {
            "denied" => format!(
                "The daemon's role lacks the rights to read this (SQLSTATE 42501: {}). Grant it pg_monitor \
                 (GRANT pg_monitor TO role); the index advisor also needs to plan the statements as their roles.",
                self.message
            ),
            "missing" => format!("Not available in this database: {} (is the pitstop extension installed and up to date?)", self.message),
            "unavailable" => format!("PostgreSQL is not reachable: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// One section's answer.
pub type Section = Result<Rows, ReadError>;

/// After a failed connection, reads fail at once with its error for this long instead of each
/// waiting for a connection attempt of its own.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

enum Session {
    None,
    Open(PostgresConfig, Arc<Client>),
    Failed(Instant, ReadError),
}

pub struct Reader {
    config: watch::Receiver<Arc<Config>>,
    timeout: Duration,
    application_name: &'static str,
    /// The session resolves names as the daemon role's own sessions would
    /// (`db::use_users_search_path`): only for the advisor's statements, which plan the
    /// workload's texts; every other reader keeps the pinned search_path.
    users_search_path: bool,
    session: Mutex<Session>,
}

impl Reader {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        timeout: Duration,
        application_name: &'static str,
    ) -> Reader {
        Reader {
            config,
            timeout,
            application_name,
            users_search_path: false,
            session: Mutex::new(Session::None),
        }
    }

    /// A reader for the advisor's statements only (`users_search_path`).
    pub fn planning_users_statements(mut self) -> Reader {
        self.users_search_path = true;
        self
    }

    /// The open session, or a new one when there is none, it closed, or the configured
    /// connection settings changed; the last failure while it is recent.
    async fn client(&self) -> Result<Arc<Client>, ReadError> {
        let mut pg = self.config.borrow().postgres.clone();
        pg.statement_timeout = pg.statement_timeout.min(self.timeout);
        let mut session = self.session.lock().await;
        match &*session {
            Session::Open(used, client) if *used == pg && !client.is_closed() => {
                return Ok(client.clone())
            }
            Session::Failed(at, error) if at.elapsed() < RECONNECT_AFTER => {
                return Err(error.clone())
            }
            _ => {}
        }
        // The driver's connect_timeout bounds the socket's connect only; a server that accepts
        // and never answers would hold every page.
        let limit = pg.connect_timeout + Duration::from_millis(500);
        let connected =
            match tokio::time::timeout(limit, db::connect_daemon(&pg, self.application_name)).await
            {
                Ok(Ok(pair)) => Ok(pair),
                Ok(Err(e)) => Err(ReadError::unavailable(db::describe_error(&e))),
                Err(_) => Err(ReadError::unavailable(format!(
                    "no answer within {}",
                    humantime::format_duration(limit)
                ))),
            };
        match connected {
            Ok((client, connection)) => {
                // The driver task ends when the client is dropped or the server goes away.
                drop(db::drive(connection));
                // Nothing over HTTP writes: the advice then remembers no suggestion either.
                let mut prepared = client
                    .batch_execute(
                        "SELECT pg_catalog.set_config('default_transaction_read_only', 'on', false)",
                    )
                    .await;
                if prepared.is_ok() && self.users_search_path {
                    prepared = db::use_users_search_path(&client).await;
                }
                if let Err(e) = prepared {
                    let error = ReadError::of(&e);
                    *session = Session::Failed(Instant::now(), error.clone());
                    return Err(error);
                }
                let client = Arc::new(client);
                *session = Session::Open(pg, client.clone());
                Ok(client)
            }
            Err(error) => {
                *session = Session::Failed(Instant::now(), error.clone());
                Err(error)
            }
        }
    }

    /// Runs one statement; its rows as JSON objects.
    pub async fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Section {
        let client = self.client().await?;
        rows_of(&client, sql, params).await
    }
}

/// Where the overview's sections are read: the console's `Reader` (the daemon's session) or
/// the command line's own connection (`pitstop report problems`).
pub trait Source {
    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Section> + Send;
}

impl Source for Reader {
    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Section> + Send {
        Reader::rows(self, sql, params)
    }
}

impl Source for Client {
    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Section> + Send {
        rows_of(self, sql, params)
    }
}

/// One statement's rows on `client` as JSON objects.
pub async fn rows_of(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Section {
    let rows = client.query(sql, params).await.map_err(|e| ReadError::of(&e))?;
    rows.iter().map(row_json).collect()
}

/// A row as a JSON object; the SQL casts what has no natural JSON form (times, intervals,
/// arrays, numeric) to text or float8.
pub fn row_json(row: &Row) -> Result<Map<String, Value>, ReadError> {
    let mut out = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let bad = |e: tokio_postgres::Error| ReadError {
            kind: "failed",
            sqlstate: None,
            message: format!("column {}: {e}", column.name()),
        };
        let value = match *column.type_() {
            Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(bad)?.map(Value::Bool),
            Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(bad)?.map(Value::from),
            Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(bad)?.map(Value::from),
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Value::from),
            Type::OID => row.try_get::<_, Option<u32>>(i).map_err(bad)?.map(Value::from),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)
                .map_err(bad)?
                .and_then(|x| Number::from_f64(x.into()))
                .map(Value::Number),
            Type::FLOAT8 => row
                .try_get::<_, Option<f64>>(i)
                .map_err(bad)?
                .and_then(Number::from_f64)
                .map(Value::Number),
            Type::JSON | Type::JSONB => row.try_get::<_, Option<Value>>(i).map_err(bad)?,
            _ => row.try_get::<_, Option<String>>(i).map_err(bad)?.map(Value::String),
        };
        out.insert(column.name().to_string(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}
