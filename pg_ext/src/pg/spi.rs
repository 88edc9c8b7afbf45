//! pitstop's own SQL through SPI: read-only catalog lookups (`connect` + `select`: no
//! transaction id) and, through `connect_mut`, its own tables. Both pin the search_path (see
//! `guc::with_pinned_search_path`); a caller's statement never runs through them.

use crate::error::PitstopError;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};

/// `Spi::connect` with search_path = pg_catalog, pg_temp, for pitstop's own SQL.
#[allow(clippy::disallowed_methods)]
pub fn connect<R>(f: impl FnOnce(&SpiClient<'_>) -> R) -> R {
    crate::pg::guc::with_pinned_search_path(|| Spi::connect(f))
}

/// `Spi::connect_mut` with search_path = pg_catalog, pg_temp, for pitstop's own writes.
#[allow(clippy::disallowed_methods)]
pub fn connect_mut<R>(f: impl FnOnce(&mut SpiClient<'_>) -> R) -> R {
    crate::pg::guc::with_pinned_search_path(|| Spi::connect_mut(f))
}

/// The first column of the first row of a read-only query; None when there is no row, the
/// value is NULL or the query fails.
pub fn select_one<T: FromDatum + IntoDatum>(
    client: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Option<T> {
    client.select(sql, Some(1), args).ok()?.first().get_one::<T>().ok().flatten()
}

/// Column `name` of an SPI row; None for SQL NULL. A column the query does not return, or a
/// value of another SQL type than `T`, raises an internal error naming the column: an edited
/// `.sql` file must fail loudly, not read as 0 or empty text.
pub fn column<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, name: &str) -> Option<T> {
    row.get_by_name::<T, _>(name).unwrap_or_else(|e| {
        let problem = format!("{e} (read as {})", std::any::type_name::<T>());
        PitstopError::UnreadableColumn { column: name.into(), problem }.report()
    })
}

/// `column`, for a column that is never NULL: a NULL raises the same internal error.
pub fn required<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, name: &str) -> T {
    column(row, name).unwrap_or_else(|| {
        PitstopError::UnreadableColumn { column: name.into(), problem: "it is NULL".into() }
            .report()
    })
}

/// `schema.object` (quoted) of an object created by an extension, if that extension is
/// installed in the current database.
pub fn extension_object(client: &SpiClient<'_>, extension: &str, object: &str) -> Option<String> {
    select_one(
        client,
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident($2)
           FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = $1",
        &[extension.into(), object.into()],
    )
}

/// The current value of a numeric setting in its base unit (kB for work_mem), from pg_settings.
pub fn setting_value(client: &SpiClient<'_>, name: &str) -> Option<f64> {
    select_one(
        client,
        "SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = $1",
        &[name.into()],
    )
}

/// `EXPLAIN (FORMAT JSON[, options]) <statement>` as JSON text. The caller has checked that
/// `statement` is exactly one explainable statement, so nothing else rides along. It is the
/// caller's, so it runs under the caller's search_path.
#[allow(clippy::disallowed_methods)]
pub fn explain_json(statement: &str, options: &str) -> Result<String, PitstopError> {
    let sql = if options.is_empty() {
        format!("EXPLAIN (FORMAT JSON) {statement}")
    } else {
        format!("EXPLAIN (FORMAT JSON, {options}) {statement}")
    };
    // EXPLAIN is a utility statement, which read-only SPI refuses; it writes nothing itself
    // (ANALYZE of DML is the caller's to wrap in a rolled-back subtransaction).
    Spi::connect_mut(|client| {
        let table =
            client.update(&sql, None, &[]).unwrap_or_else(|e| pgrx::error!("EXPLAIN failed: {e}"));
        let plan: Option<pgrx::Json> = table.first().get_one().ok().flatten();
        plan.map(|json| json.0.to_string()).ok_or(PitstopError::NoPlan)
    })
}
