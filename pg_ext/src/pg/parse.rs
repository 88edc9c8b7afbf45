//! Parsing user-supplied SQL before we run anything derived from it.

use crate::error::PitstopError;
use pgrx::pg_sys;
use std::ffi::CString;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
}

/// Parses `sql` with the server's own grammar and returns the kind of its one statement.
/// A syntax error is raised by the parser itself (SQLSTATE 42601, with the position).
pub fn single_explainable_statement(sql: &str) -> Result<StatementKind, PitstopError> {
    single_statement(sql, false)
}

/// Like `single_explainable_statement`, but `PREPARE name AS <statement>` counts as the
/// statement it prepares (pg_stat_statements records prepared statements that way).
pub fn single_workload_statement(sql: &str) -> Result<StatementKind, PitstopError> {
    single_statement(sql, true)
}

/// A NUL-terminated copy of user text (a statement) for the server's C functions; None when
/// the text holds a NUL byte. Memory that cannot be had is Postgres' ERROR 53200, never
/// Rust's abort (`CString::new` would abort).
pub fn c_text(text: &str) -> Option<CString> {
    copy_with_nul(text)
        .unwrap_or_else(|_| PitstopError::OutOfMemory("a copy of the statement").report())
}

/// `c_text` without the ERROR: Err when the memory cannot be had.
fn copy_with_nul(text: &str) -> Result<Option<CString>, std::collections::TryReserveError> {
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(text.len().saturating_add(1))?;
    bytes.extend_from_slice(text.as_bytes());
    // The terminating NUL fits in the capacity reserved above: no further allocation.
    Ok(CString::new(bytes).ok())
}

fn single_statement(sql: &str, unwrap_prepare: bool) -> Result<StatementKind, PitstopError> {
    let c_sql = c_text(sql).ok_or(PitstopError::NotOneStatement(0))?;
    // SAFETY: raw_parser reads the NUL-terminated string and returns a List of RawStmt
    // allocated in the current memory context (or raises a Postgres ERROR, which pgrx
    // propagates). We only read node tags from it.
    let tags = unsafe {
        let list = pg_sys::raw_parser(c_sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        crate::pg::list::pointers::<pg_sys::RawStmt>(list)
            .into_iter()
            .map(|raw| {
                let node = (*raw).stmt;
                if unwrap_prepare && (*node).type_ == pg_sys::NodeTag::T_PrepareStmt {
                    (*(*(node as *mut pg_sys::PrepareStmt)).query).type_
                } else {
                    (*node).type_
                }
            })
            .collect::<Vec<_>>()
    };
    if tags.len() != 1 {
        return Err(PitstopError::NotOneStatement(tags.len()));
    }
    match tags[0] {
        pg_sys::NodeTag::T_SelectStmt => Ok(StatementKind::Select),
        pg_sys::NodeTag::T_InsertStmt => Ok(StatementKind::Insert),
        pg_sys::NodeTag::T_UpdateStmt => Ok(StatementKind::Update),
        pg_sys::NodeTag::T_DeleteStmt => Ok(StatementKind::Delete),
        pg_sys::NodeTag::T_MergeStmt => Ok(StatementKind::Merge),
        other => Err(PitstopError::NotExplainable(statement_name(other))),
    }
}

fn statement_name(tag: pg_sys::NodeTag) -> String {
    // NodeTag's Debug is e.g. "T_CreateStmt": drop the prefix and "Stmt" for the message.
    let name = format!("{tag:?}");
    let name = name.trim_start_matches("T_").trim_end_matches("Stmt");
    if name.is_empty() {
        "utility".to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn c_text_is_the_text_and_refuses_nul_bytes() {
        assert_eq!(super::copy_with_nul("select 1").unwrap().unwrap().as_bytes(), b"select 1");
        assert!(super::copy_with_nul("select 1\0; select 2").unwrap().is_none());
    }
}
