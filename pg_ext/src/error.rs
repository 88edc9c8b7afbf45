//! Errors raised at the SQL boundary: one enum, turned into `ereport!` with a real SQLSTATE,
//! DETAIL and HINT in one place.

use pgrx::pg_sys::elog::PgLogLevel;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PitstopError {
    #[error("pitstop must be loaded via shared_preload_libraries")]
    NotPreloaded,
    #[error("argument \"{0}\" must not be NULL")]
    NullArgument(&'static str),
    #[error("unknown sort key \"{given}\"")]
    UnknownSortKey { given: String, valid: String },
    #[error("argument \"{name}\" must not be negative (got {value})")]
    Negative { name: &'static str, value: String },
    #[error("pg_stat_statements is not installed in this database")]
    MissingPgStatStatements,
    #[error("expected exactly one SQL statement, got {0}")]
    NotOneStatement(usize),
    #[error("cannot explain a {0} statement")]
    NotExplainable(String),
    #[error("EXPLAIN did not return a JSON plan")]
    NoPlan,
    #[error("expected a CREATE INDEX statement")]
    NotCreateIndex,
    #[error("access method \"{0}\" is not supported for hypothetical indexes")]
    UnsupportedAccessMethod(String),
    #[error("access method \"{am}\" does not support {feature}")]
    AccessMethodLacks { am: String, feature: &'static str },
    #[error("cannot use more than {0} columns in an index")]
    TooManyColumns(u32),
    #[error("column \"{column}\" does not exist in \"{table}\"")]
    UndefinedColumn { column: String, table: String },
    #[error("\"{0}\" is not a table or materialized view")]
    UnsupportedRelation(String),
    #[error("no hypothetical index with OID {0}")]
    UnknownHypoIndex(u32),
    #[error("\"{0}\" is not an index")]
    NotAnIndex(String),
    #[error("hypothetical index \"{0}\" already exists")]
    DuplicateHypoIndex(String),
    #[error("pitstop.cached only runs read-only SELECT statements, not {0}")]
    NotReadOnly(String),
    #[error("the query has {expected} parameter(s) but {given} value(s) were given")]
    ParameterCount { expected: usize, given: usize },
    #[error("the column definition list does not match the query's result")]
    ColumnMismatch(String),
    #[error("a column definition list is required for pitstop.cached")]
    NoColumnList,
    #[error("argument \"{name}\" must be {expected} (got {value})")]
    OutOfRange { name: &'static str, value: String, expected: &'static str },
    #[error("unknown workload \"{0}\"")]
    UnknownWorkload(String),
    #[error("pgstattuple is not installed in this database")]
    MissingPgstattuple,
    #[error("out of memory")]
    OutOfMemory(&'static str),
    #[error("\"{0}\" is not a latency histogram as pitstop.query_snapshots stores it")]
    NotAHistogram(&'static str),
    #[error("pitstop could not read column \"{column}\" of its own query: {problem}")]
    UnreadableColumn { column: String, problem: String },
}

impl PitstopError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NotPreloaded | Self::MissingPgStatStatements | Self::MissingPgstattuple => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            Self::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::UnknownSortKey { .. } | Self::Negative { .. } | Self::OutOfRange { .. } => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::NotOneStatement(_) => ERRCODE_SYNTAX_ERROR,
            Self::NotExplainable(_) => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::NoPlan => ERRCODE_INTERNAL_ERROR,
            Self::NotCreateIndex => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::UnsupportedAccessMethod(_) | Self::AccessMethodLacks { .. } => {
                ERRCODE_FEATURE_NOT_SUPPORTED
            }
            Self::TooManyColumns(_) => ERRCODE_TOO_MANY_COLUMNS,
            Self::UndefinedColumn { .. } => ERRCODE_UNDEFINED_COLUMN,
            Self::UnsupportedRelation(_) | Self::NotAnIndex(_) => ERRCODE_WRONG_OBJECT_TYPE,
            Self::UnknownHypoIndex(_) => ERRCODE_UNDEFINED_OBJECT,
            Self::DuplicateHypoIndex(_) => ERRCODE_DUPLICATE_OBJECT,
            Self::NotReadOnly(_) => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::ParameterCount { .. } | Self::UnknownWorkload(_) => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            Self::ColumnMismatch(_) | Self::NoColumnList => ERRCODE_DATATYPE_MISMATCH,
            Self::OutOfMemory(_) => ERRCODE_OUT_OF_MEMORY,
            Self::NotAHistogram(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::UnreadableColumn { .. } => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::UnreadableColumn { .. } => Some(
                "A query in pitstop's SQL files no longer returns what its Rust reader expects."
                    .into(),
            ),
            Self::UnknownSortKey { valid, .. } => Some(format!("Valid sort keys are: {valid}.")),
            Self::ColumnMismatch(detail) => Some(detail.clone()),
            Self::OutOfMemory(what) => Some(format!("Failed to allocate memory for {what}.")),
            Self::NotExplainable(_) => Some(
                "Only SELECT, INSERT, UPDATE, DELETE, MERGE and VALUES can be explained.".into(),
            ),
            _ => None,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NotPreloaded => Some(
                "Add pitstop to shared_preload_libraries in postgresql.conf and restart the server.",
            ),
            Self::MissingPgStatStatements => Some(
                "Add pg_stat_statements to shared_preload_libraries, restart the server, \
                 then run CREATE EXTENSION pg_stat_statements.",
            ),
            Self::NotOneStatement(_) => Some("Pass a single statement without a trailing second one."),
            Self::NotCreateIndex => Some("Pass a statement such as CREATE INDEX ON orders (customer_id)."),
            Self::UnsupportedAccessMethod(_) => Some("Hypothetical indexes support btree, hash and brin."),
            Self::UnknownHypoIndex(_) => Some("pitstop.hypo_list() shows this session's hypothetical indexes."),
            Self::NotReadOnly(_) => Some("Run writes directly; the cache invalidates itself when they commit."),
            Self::ParameterCount { .. } => Some("Pass one array element per $n parameter: '{42}' for $1."),
            Self::NoColumnList => Some("Call it as SELECT * FROM pitstop.cached('select …') AS t(col type, …)."),
            Self::UnknownWorkload(_) => Some("Valid workloads are: web, oltp, dw, mixed."),
            Self::MissingPgstattuple => Some(
                "Run CREATE EXTENSION pgstattuple, or call table_bloat(false) for the estimate from statistics.",
            ),
            _ => None,
        }
    }

    /// Raises this error as a Postgres ERROR; never returns.
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "pitstop");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Unwraps a result at the SQL boundary, raising the error otherwise.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T, PitstopError> {
    fn or_report(self) -> T {
        self.unwrap_or_else(|e| e.report())
    }
}

/// A required SQL argument: NULL becomes a clear error instead of a silent NULL result.
pub fn required<T>(value: Option<T>, name: &'static str) -> Result<T, PitstopError> {
    value.ok_or(PitstopError::NullArgument(name))
}
