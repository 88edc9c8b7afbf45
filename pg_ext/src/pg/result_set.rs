//! Query results in the cache's binary form: the column types, then each row as a Postgres
//! minimal tuple with every out-of-line (TOAST) value pulled inline, so a hit is copied back
//! into a tuplestore without parsing anything.
//!
//! Layout (little endian): u32 column count, (u32 type, i32 typmod) per column, u32 row
//! count, then per row u32 length and the minimal tuple bytes (whose own `t_len` says the
//! same length: checked before a row is used).

use crate::pg::tuple_desc;
use crate::pg::unguarded;
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use std::ops::Range;

// `toast_flatten_tuple` (access/heaptoast.h) and `datumCopy` (utils/datum.h) have no pgrx
// binding.
unsafe extern "C-unwind" {
    fn toast_flatten_tuple(tup: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> pg_sys::HeapTuple;
    fn datumCopy(value: pg_sys::Datum, typ_by_val: bool, typ_len: i32) -> pg_sys::Datum;
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn get_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Appends one row (minimal tuple bytes) to an encoded result.
fn put_row(out: &mut Vec<u8>, row: &[u8]) {
    put_u32(out, row.len() as u32);
    out.extend_from_slice(row);
}

/// Bytes of a minimal tuple's header before its null bitmap (SizeofMinimalTupleHeader).
const MINIMAL_TUPLE_HEADER: usize = std::mem::offset_of!(pg_sys::MinimalTupleData, t_bits);

/// Whether `row` can be a minimal tuple: a whole header whose `t_len` is the row's length
/// (in the server's byte order, as Postgres wrote it).
fn is_minimal_tuple(row: &[u8]) -> bool {
    row.len() >= MINIMAL_TUPLE_HEADER
        && row[..4].try_into().map(u32::from_ne_bytes).ok() == Some(row.len() as u32)
}

/// Whether an encoded result is whole: its rows fill it exactly.
pub fn is_well_formed(encoded: &[u8]) -> bool {
    rows(encoded).is_some()
}

/// Column count of an encoded result.
fn column_count(encoded: &[u8]) -> Option<usize> {
    get_u32(encoded, 0).map(|n| n as usize)
}

/// Type and typmod of column `i` (from 0).
fn column_type(encoded: &[u8], i: usize) -> Option<(pg_sys::Oid, i32)> {
    let at = 4 + i * 8;
    Some((pg_sys::Oid::from(get_u32(encoded, at)?), get_u32(encoded, at + 4)? as i32))
}

/// Column types of an encoded result.
pub fn column_types(encoded: &[u8]) -> Option<Vec<(pg_sys::Oid, i32)>> {
    (0..column_count(encoded)?).map(|i| column_type(encoded, i)).collect()
}

/// The rows of an encoded result, as byte ranges of their minimal tuples.
#[derive(Clone)]
struct Rows<'a> {
    encoded: &'a [u8],
    at: usize,
    left: u32,
}

/// The rows of an encoded result; None unless they fill it exactly (a truncated or
/// overlong result is refused as a whole).
fn rows(encoded: &[u8]) -> Option<Rows<'_>> {
    let count_at = 4 + column_count(encoded)? * 8;
    let rows = Rows { encoded, at: count_at + 4, left: get_u32(encoded, count_at)? };
    let mut check = rows.clone();
    check.by_ref().for_each(drop);
    (check.left == 0 && check.at == encoded.len()).then_some(rows)
}

impl Iterator for Rows<'_> {
    type Item = Range<usize>;

    /// The next row; None after the last or at anything malformed.
    fn next(&mut self) -> Option<Range<usize>> {
        if self.left == 0 {
            return None;
        }
        let len = get_u32(self.encoded, self.at)? as usize;
        let start = self.at + 4;
        let end = start.checked_add(len).filter(|end| *end <= self.encoded.len())?;
        if !is_minimal_tuple(&self.encoded[start..end]) {
            return None;
        }
        self.at = end;
        self.left -= 1;
        Some(start..end)
    }
}

/// Whether values of a type can hold an anonymous record: its type id is a typmod private to
/// the backend that registered it, so its bytes mean something else in any other backend.
/// True for `record`, `record[]` and anything built from them (domains, arrays, ranges,
/// composites); a type nested deeper than any real one counts as holding one.
pub fn holds_anonymous_record(type_oid: pg_sys::Oid) -> bool {
    fn holds(type_oid: pg_sys::Oid, depth: u32) -> bool {
        if let Some(builtin) = builtin_holds_anonymous_record(type_oid) {
            return builtin;
        }
        if depth > 16 {
            return true;
        }
        // SAFETY: type cache lookups of an existing type; the row type's descriptor is a copy
        // we free.
        unsafe {
            let base = pg_sys::getBaseType(type_oid);
            if base != type_oid {
                return holds(base, depth + 1);
            }
            let element = pg_sys::get_element_type(type_oid);
            if element != pg_sys::Oid::INVALID {
                return holds(element, depth + 1);
            }
            match pg_sys::get_typtype(type_oid) as u8 {
                pg_sys::TYPTYPE_COMPOSITE => {
                    let desc = pg_sys::lookup_rowtype_tupdesc_copy(type_oid, -1);
                    let found = (0..(*desc).natts as usize).any(|i| {
                        let attr = tuple_desc::attribute(desc, i);
                        !(*attr).attisdropped && holds((*attr).atttypid, depth + 1)
                    });
                    pg_sys::FreeTupleDesc(desc);
                    found
                }
                pg_sys::TYPTYPE_RANGE => holds(pg_sys::get_range_subtype(type_oid), depth + 1),
                pg_sys::TYPTYPE_MULTIRANGE => {
                    holds(pg_sys::get_multirange_range(type_oid), depth + 1)
                }
                _ => false,
            }
        }
    }
    holds(type_oid, 0)
}

/// `holds_anonymous_record` for a built-in type (None for others): only `record` and
/// `record[]` do. Keeps a cache hit free of catalog lookups.
fn builtin_holds_anonymous_record(type_oid: pg_sys::Oid) -> Option<bool> {
    (type_oid == pg_sys::RECORDOID
        || type_oid == pg_sys::RECORDARRAYOID
        || type_oid.to_u32() < pg_sys::FirstNormalObjectId)
        .then(|| type_oid == pg_sys::RECORDOID || type_oid == pg_sys::RECORDARRAYOID)
}

/// Whether an encoded result has a column (or an unreadable column header) whose type
/// `holds` says can hold an anonymous record.
fn record_column(encoded: &[u8], holds: impl Fn(pg_sys::Oid) -> bool) -> bool {
    column_count(encoded)
        .is_none_or(|n| (0..n).any(|i| column_type(encoded, i).is_none_or(|(t, _)| holds(t))))
}

/// Whether an encoded result may be handed to this backend's caller: whole, and with no
/// column that can hold another backend's anonymous record type (never stored; checked again
/// on every hit all the same).
pub fn servable(encoded: &[u8]) -> bool {
    is_well_formed(encoded) && !record_column(encoded, holds_anonymous_record)
}

/// Where the rows of a `cached` or `cached_json` call go.
#[derive(Clone, Copy)]
pub enum Target {
    /// A set-returning call's tuplestore, typed by its column definition list.
    Rows(RowsTarget),
    /// The first column of the first row (`cached_json`), copied into the caller's context.
    FirstValue,
}

/// A set-returning call that accepts a materialized result and has a column definition list
/// (made by `rows_target`).
#[derive(Clone, Copy)]
pub struct RowsTarget(*mut pg_sys::ReturnSetInfo);

/// The call's `rsinfo` as a target for rows; None when the call has no column definition
/// list (or cannot take a tuplestore).
///
/// # Safety
/// `rsinfo` is the current call's resultinfo (or NULL), and the target is used only during
/// that call.
pub unsafe fn rows_target(rsinfo: *mut pg_sys::ReturnSetInfo) -> Option<RowsTarget> {
    // SAFETY: the caller's contract.
    unsafe { expected_desc(rsinfo).map(|_| RowsTarget(rsinfo)) }
}

/// What the caller gets back: the rows went into its tuplestore, or the one value.
pub enum Outcome {
    Delivered,
    Value(Option<pg_sys::Datum>),
}

/// Why a fill's result was not kept in its encoded form for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotKept {
    /// The caller did not ask for it (the call bypasses the cache).
    NotWanted,
    /// It grew past the limit: encoding stopped there, the rest was only delivered.
    TooLarge,
    /// A column can hold anonymous records.
    AnonymousRecord,
    /// Memory for the copy could not be had: encoding stopped, the rows were delivered.
    OutOfMemory,
}

/// A statement run by `execute`.
pub struct Executed {
    /// What the caller gets, or why its column definition list does not fit the result.
    pub outcome: Result<Outcome, String>,
    /// The result encoded for the cache, or why not.
    pub kept: Result<Vec<u8>, NotKept>,
}

/// The state of one run, reached by the DestReceiver callbacks through `Receiver::fill`.
struct Fill {
    target: Target,
    keep_up_to: usize,
    kept: Result<Vec<u8>, NotKept>,
    rows: u32,
    mismatch: Option<String>,
    value: Option<pg_sys::Datum>,
    /// The caller's memory context (for the one value of `FirstValue`).
    caller_context: pg_sys::MemoryContext,
    /// Scratch memory for encoding one row, reset after each.
    row_context: pg_sys::MemoryContext,
    desc: pg_sys::TupleDesc,
    store: *mut pg_sys::Tuplestorestate,
}

/// A DestReceiver (first, so Postgres sees one) with our state.
#[repr(C)]
struct Receiver {
    base: pg_sys::DestReceiver,
    fill: *mut Fill,
}

/// Makes room for `additional` more bytes of the encoded result (doubling, capped at
/// `limit`); false when the memory cannot be had. The copy is only for the cache: the caller
/// then stops keeping it and the query goes on (never an ERROR, never Rust's abort).
fn reserve(out: &mut Vec<u8>, additional: usize, limit: usize) -> bool {
    let Some(wanted) = out.len().checked_add(additional) else { return false };
    if wanted <= out.capacity() {
        return true;
    }
    let target = wanted.max(out.capacity().saturating_mul(2)).min(limit.max(wanted));
    out.try_reserve_exact(target - out.len()).is_ok()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn fill_startup(
    receiver: *mut pg_sys::DestReceiver,
    _operation: std::ffi::c_int,
    desc: pg_sys::TupleDesc,
) {
    // SAFETY: `receiver` is our Receiver, whose Fill outlives the statement (see `execute`);
    // `desc` is the statement's result descriptor.
    unsafe {
        let fill = &mut *(*(receiver as *mut Receiver)).fill;
        fill.desc = desc;
        let natts = (*desc).natts as usize;
        let type_of = |i: usize| (*tuple_desc::attribute(desc, i)).atttypid;
        if let Target::Rows(RowsTarget(rsinfo)) = fill.target {
            fill.mismatch = mismatch_of((*rsinfo).expectedDesc, natts, |i| Some(type_of(i)));
            if fill.mismatch.is_some() {
                return;
            }
        }
        if fill.keep_up_to == 0 {
            fill.kept = Err(NotKept::NotWanted);
        } else if (0..natts).any(|i| holds_anonymous_record(type_of(i))) {
            fill.kept = Err(NotKept::AnonymousRecord);
        } else if 8 + natts * 8 > fill.keep_up_to {
            fill.kept = Err(NotKept::TooLarge);
        } else {
            let mut out = Vec::new();
            if !reserve(&mut out, 8 + natts * 8, fill.keep_up_to) {
                fill.kept = Err(NotKept::OutOfMemory);
                return;
            }
            put_u32(&mut out, natts as u32);
            for i in 0..natts {
                let attr = tuple_desc::attribute(desc, i);
                put_u32(&mut out, (*attr).atttypid.to_u32());
                put_u32(&mut out, (*attr).atttypmod as u32);
            }
            put_u32(&mut out, 0); // the row count, written at the end
            fill.kept = Ok(out);
            fill.row_context = pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"pitstop cache fill row".as_ptr(),
                0,
                8 * 1024,
                8 * 1024 * 1024,
            );
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn fill_row(
    slot: *mut pg_sys::TupleTableSlot,
    receiver: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: as in fill_startup; `slot` holds the next row, of `fill.desc`.
    unsafe {
        let fill = &mut *(*(receiver as *mut Receiver)).fill;
        if fill.mismatch.is_some() {
            return false;
        }
        match fill.target {
            Target::Rows(_) => pg_sys::tuplestore_puttupleslot(fill.store, slot),
            Target::FirstValue if fill.rows == 0 => {
                // slot_getsomeattrs(slot, 1), an inline function.
                if (*slot).tts_nvalid < 1 {
                    pg_sys::slot_getsomeattrs_int(slot, 1);
                }
                if !*(*slot).tts_isnull {
                    let attr = tuple_desc::attribute(fill.desc, 0);
                    let value = *(*slot).tts_values;
                    let caller = pg_sys::MemoryContextSwitchTo(fill.caller_context);
                    let copy = if (*attr).attlen == -1 {
                        pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(value.cast_mut_ptr()))
                    } else {
                        pg_guard_ffi_boundary(|| {
                            datumCopy(value, (*attr).attbyval, (*attr).attlen as i32)
                        })
                    };
                    pg_sys::MemoryContextSwitchTo(caller);
                    fill.value = Some(copy);
                }
            }
            Target::FirstValue => {}
        }
        fill.rows = fill.rows.saturating_add(1);
        if let Ok(out) = &mut fill.kept {
            // The row as a minimal tuple with every TOASTed value pulled inline, made in
            // scratch memory and copied into the encoded result.
            let caller = pg_sys::MemoryContextSwitchTo(fill.row_context);
            let mut should_free = false;
            let heap = pg_sys::ExecFetchSlotHeapTuple(slot, false, &mut should_free);
            let flat = pg_guard_ffi_boundary(|| toast_flatten_tuple(heap, fill.desc));
            let minimal = minimal_tuple_from_heap_tuple(flat);
            let bytes = std::slice::from_raw_parts(minimal as *const u8, (*minimal).t_len as usize);
            let fits = out.len() + 4 + bytes.len() <= fill.keep_up_to;
            let grown = fits && reserve(out, 4 + bytes.len(), fill.keep_up_to);
            if grown {
                put_row(out, bytes);
            }
            pg_sys::MemoryContextSwitchTo(caller);
            pg_sys::MemoryContextReset(fill.row_context);
            // Stop here: the encoded part is freed, the rest is only delivered.
            if !fits {
                fill.kept = Err(NotKept::TooLarge);
            } else if !grown {
                fill.kept = Err(NotKept::OutOfMemory);
            }
        }
        true
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn fill_nothing(_receiver: *mut pg_sys::DestReceiver) {}

/// Runs a read-only statement with text parameters through SPI. Its rows go straight to
/// `target` as the executor produces them; with `keep_up_to` > 0 they are also encoded for
/// the cache until that many bytes would be exceeded (then only delivered). SPI runs it as
/// a non-read-only call so it gets a fresh snapshot, taken after the caller read the
/// relation versions (rule 5). Query errors are raised as usual.
pub fn execute(
    sql: &str,
    param_types: &[pg_sys::Oid],
    params: &[Option<&str>],
    target: Target,
    keep_up_to: usize,
) -> Executed {
    // SAFETY: the SPI sequence (connect, prepare, execute with our receiver, finish). The
    // receiver and its Fill live on this frame for the whole SPI call; an ERROR inside it
    // comes back as a panic through pgrx's guard of the call and drops them. Parameter Datums
    // come from each type's input function; texts are copied with palloc (an ERROR, not an
    // abort, when memory runs out).
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let mut fill = Fill {
            target,
            keep_up_to,
            kept: Err(NotKept::NotWanted),
            rows: 0,
            mismatch: None,
            value: None,
            caller_context,
            row_context: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            store: std::ptr::null_mut(),
        };
        let mut set_desc = std::ptr::null_mut();
        if let Target::Rows(RowsTarget(rsinfo)) = target {
            let per_query =
                pg_sys::MemoryContextSwitchTo((*(*rsinfo).econtext).ecxt_per_query_memory);
            set_desc = pg_sys::CreateTupleDescCopy((*rsinfo).expectedDesc);
            fill.store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
            pg_sys::MemoryContextSwitchTo(per_query);
        }
        if pg_sys::SPI_connect() < 0 {
            pgrx::error!("pitstop: SPI_connect failed");
        }
        let c_sql = pg_sys::pnstrdup(sql.as_ptr().cast(), sql.len());
        // SPI_prepare copies the types and never writes them.
        let plan =
            pg_sys::SPI_prepare(c_sql, param_types.len() as i32, param_types.as_ptr().cast_mut());
        if plan.is_null() {
            pgrx::error!("pitstop: could not prepare the cached statement");
        }
        let list = pg_sys::makeParamList(params.len() as i32);
        let slots = (*list).params.as_mut_slice(params.len());
        for ((slot, value), type_oid) in slots.iter_mut().zip(params).zip(param_types) {
            *slot = pg_sys::ParamExternData {
                value: pg_sys::Datum::from(0),
                isnull: value.is_none(),
                pflags: pg_sys::PARAM_FLAG_CONST as u16,
                ptype: *type_oid,
            };
            if let Some(text) = value {
                let (mut input, mut io_param) = (pg_sys::Oid::INVALID, pg_sys::Oid::INVALID);
                pg_sys::getTypeInputInfo(*type_oid, &mut input, &mut io_param);
                let c_text = pg_sys::pnstrdup(text.as_ptr().cast(), text.len());
                slot.value = pg_sys::OidInputFunctionCall(input, c_text, io_param, -1);
            }
        }
        let mut receiver = Receiver {
            base: pg_sys::DestReceiver {
                receiveSlot: Some(fill_row),
                rStartup: Some(fill_startup),
                rShutdown: Some(fill_nothing),
                rDestroy: Some(fill_nothing),
                mydest: pg_sys::CommandDest::DestTuplestore,
            },
            fill: &raw mut fill,
        };
        let options = pg_sys::SPIExecuteOptions {
            params: list,
            read_only: false,
            dest: &mut receiver.base,
            ..Default::default()
        };
        let status = pg_sys::SPI_execute_plan_extended(plan, &options);
        if status != pg_sys::SPI_OK_SELECT as i32 {
            pgrx::error!("pitstop: the cached statement did not run as a SELECT ({status})");
        }
        pg_sys::SPI_finish();
        if let Ok(out) = &mut fill.kept {
            let count_at = 4 + column_count(out).unwrap_or(0) * 8;
            out[count_at..count_at + 4].copy_from_slice(&fill.rows.to_le_bytes());
        }
        let outcome = match (fill.mismatch.take(), target) {
            (Some(detail), _) => Err(detail),
            (None, Target::Rows(RowsTarget(rsinfo))) => {
                (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
                (*rsinfo).setResult = fill.store;
                (*rsinfo).setDesc = set_desc;
                Ok(Outcome::Delivered)
            }
            (None, Target::FirstValue) => Ok(Outcome::Value(fill.value)),
        };
        Executed { outcome, kept: fill.kept }
    }
}

/// Hands a stored result to the caller (a cache hit), or says why its column definition
/// list does not fit it.
pub fn serve(target: Target, encoded: &[u8]) -> Result<Outcome, String> {
    match target {
        Target::Rows(RowsTarget(rsinfo)) => {
            // SAFETY: `rows_target` checked rsinfo, which belongs to the current call; the
            // columns are checked to match before the rows are materialized.
            unsafe {
                if let Some(detail) = mismatch((*rsinfo).expectedDesc, encoded) {
                    return Err(detail);
                }
                materialize(rsinfo, encoded);
            }
            Ok(Outcome::Delivered)
        }
        Target::FirstValue => Ok(Outcome::Value(first_value(encoded))),
    }
}

/// Why the column definition list of a set-returning call does not fit an encoded result;
/// None when it fits. Compared in place: this runs on every cache hit.
///
/// # Safety
/// `expected` is the call's expectedDesc.
unsafe fn mismatch(expected: pg_sys::TupleDesc, encoded: &[u8]) -> Option<String> {
    // SAFETY: the caller's contract.
    unsafe {
        mismatch_of(expected, column_count(encoded).unwrap_or(0), |i| {
            column_type(encoded, i).map(|(t, _)| t)
        })
    }
}

/// Why a column definition list does not fit `count` columns of these types; None when it
/// fits.
///
/// # Safety
/// `expected` is a valid TupleDesc.
unsafe fn mismatch_of(
    expected: pg_sys::TupleDesc,
    count: usize,
    type_of: impl Fn(usize) -> Option<pg_sys::Oid>,
) -> Option<String> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let natts = (*expected).natts as usize;
        if natts != count {
            return Some(format!(
                "The query returns {count} column(s) but the column definition list has {natts}."
            ));
        }
        (0..natts).find_map(|i| {
            let attr = tuple_desc::attribute(expected, i);
            let actual_type = type_of(i)?;
            (actual_type != (*attr).atttypid).then(|| {
                let name = std::ffi::CStr::from_ptr((*attr).attname.data.as_ptr()).to_string_lossy();
                format!(
                    "Column {} (\"{name}\") is {} in the result but {} in the column definition list.",
                    i + 1,
                    type_name(actual_type),
                    type_name((*attr).atttypid)
                )
            })
        })
    }
}

fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd name for any type OID.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(oid)).to_string_lossy().into_owned() }
}

/// The column definition list of a set-returning call that accepts a materialized result;
/// None when the call has none (or cannot take a tuplestore).
///
/// # Safety
/// `rsinfo` is the current call's resultinfo (or NULL).
unsafe fn expected_desc(rsinfo: *mut pg_sys::ReturnSetInfo) -> Option<pg_sys::TupleDesc> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let materialize = pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32;
        let usable = !rsinfo.is_null()
            && (*rsinfo).type_ == pg_sys::NodeTag::T_ReturnSetInfo
            && (*rsinfo).allowedModes & materialize != 0
            && !(*rsinfo).expectedDesc.is_null();
        usable.then(|| (*rsinfo).expectedDesc)
    }
}

/// Returns the encoded rows to a set-returning function's caller in materialize mode.
///
/// # Safety
/// `rsinfo` is the current call's ReturnSetInfo, accepted by `expected_desc`, and the encoded
/// result's columns match its expectedDesc (checked by the caller with `mismatch`).
unsafe fn materialize(rsinfo: *mut pg_sys::ReturnSetInfo, encoded: &[u8]) {
    if record_column(encoded, holds_anonymous_record) {
        pgrx::error!("pitstop: a cached result holds anonymous records");
    }
    let Some(rows) = rows(encoded) else { pgrx::error!("pitstop: a query result is malformed") };
    // SAFETY: the caller's contract. One pgrx guard around the whole body, whose frames own
    // nothing to drop: an ERROR (out of memory) comes back as a panic through the guard.
    unsafe {
        pg_guard_ffi_boundary(|| {
            let per_query = (*(*rsinfo).econtext).ecxt_per_query_memory;
            let caller = pg_sys::MemoryContextSwitchTo(per_query);
            let desc = unguarded::CreateTupleDescCopy((*rsinfo).expectedDesc);
            let store = unguarded::tuplestore_begin_heap(true, false, pg_sys::work_mem);
            let slot = unguarded::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
            // Each row is copied into one reused palloc'd (so MAXALIGNed) buffer, which the
            // slot reads in place; the tuplestore makes its own copy.
            let (mut scratch, mut capacity) = (std::ptr::null_mut::<u8>(), 0);
            for row in rows {
                if row.len() > capacity {
                    capacity = row.len().next_power_of_two();
                    scratch = if scratch.is_null() {
                        unguarded::palloc(capacity)
                    } else {
                        unguarded::repalloc(scratch.cast(), capacity)
                    } as *mut u8;
                }
                std::ptr::copy_nonoverlapping(encoded.as_ptr().add(row.start), scratch, row.len());
                unguarded::ExecStoreMinimalTuple(scratch.cast(), slot, false);
                unguarded::tuplestore_puttupleslot(store, slot);
            }
            unguarded::ExecDropSingleTupleTableSlot(slot);
            if !scratch.is_null() {
                unguarded::pfree(scratch.cast());
            }
            (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
            (*rsinfo).setResult = store;
            (*rsinfo).setDesc = desc;
            pg_sys::MemoryContextSwitchTo(caller);
        })
    }
}

/// The first column of the first row (a `cached_json` result), copied into the current
/// memory context; None when there is no row or it is NULL.
fn first_value(encoded: &[u8]) -> Option<pg_sys::Datum> {
    let types = column_types(encoded)?;
    let row = &encoded[rows(encoded)?.next()?];
    // SAFETY: the row is a minimal tuple of these column types; it is copied into palloc'd
    // memory, deformed through a slot, and the value copied out before the slot is dropped.
    unsafe {
        let desc = pg_sys::CreateTemplateTupleDesc(types.len() as i32);
        for (i, (type_oid, typmod)) in types.iter().enumerate() {
            pg_sys::TupleDescInitEntry(
                desc,
                (i + 1) as i16,
                std::ptr::null(),
                *type_oid,
                *typmod,
                0,
            );
        }
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        let copy = pg_sys::palloc(row.len()) as *mut u8;
        std::ptr::copy_nonoverlapping(row.as_ptr(), copy, row.len());
        pg_sys::ExecStoreMinimalTuple(copy.cast(), slot, true);
        pg_sys::slot_getsomeattrs_int(slot, 1);
        let value = if *(*slot).tts_isnull {
            None
        } else {
            let attr = tuple_desc::attribute(desc, 0);
            Some(pg_guard_ffi_boundary(|| {
                datumCopy(*(*slot).tts_values, (*attr).attbyval, (*attr).attlen as i32)
            }))
        };
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        value
    }
}

/// Relations a relation inherits from (partition ancestors), which an entry also depends on:
/// a write routed through a parent bumps the parent.
pub fn ancestors(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // SAFETY: catalog lookups; get_partition_ancestors returns a palloc'd List of OIDs.
    unsafe {
        if !pg_sys::get_rel_relispartition(relid) {
            return Vec::new();
        }
        let list = pg_guard_ffi_boundary(|| get_partition_ancestors(relid));
        (0..pg_sys::list_length(list)).map(|i| pg_sys::list_nth_oid(list, i)).collect()
    }
}

/// Relations inheriting from a relation at any depth: partitions and inheritance children,
/// other sessions' temporary ones too.
pub fn inheritors(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // SAFETY: catalog lookups; find_all_inheritors returns a palloc'd List of OIDs, the
    // relation itself first. NoLock: a child dropped meanwhile is then found gone.
    unsafe {
        if !pg_guard_ffi_boundary(|| has_subclass(relid)) {
            return Vec::new();
        }
        let list = pg_guard_ffi_boundary(|| {
            find_all_inheritors(relid, pg_sys::NoLock as i32, std::ptr::null_mut())
        });
        (0..pg_sys::list_length(list))
            .map(|i| pg_sys::list_nth_oid(list, i))
            .filter(|o| *o != relid)
            .collect()
    }
}

// catalog/partition.h and catalog/pg_inherits.h: no pgrx bindings.
unsafe extern "C-unwind" {
    fn get_partition_ancestors(relid: pg_sys::Oid) -> *mut pg_sys::List;
    fn has_subclass(relid: pg_sys::Oid) -> bool;
    fn find_all_inheritors(
        relid: pg_sys::Oid,
        lockmode: i32,
        parents: *mut *mut pg_sys::List,
    ) -> *mut pg_sys::List;
}

/// `heap` as a minimal tuple in the current memory context.
///
/// # Safety
/// `heap` is a valid heap tuple.
unsafe fn minimal_tuple_from_heap_tuple(heap: pg_sys::HeapTuple) -> pg_sys::MinimalTuple {
    // SAFETY: the caller's contract; PostgreSQL 18 added room for extra bytes before the tuple.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        return pg_sys::minimal_tuple_from_heap_tuple(heap);
        #[cfg(feature = "pg18")]
        return pg_sys::minimal_tuple_from_heap_tuple(heap, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal tuple of `len` bytes as far as framing goes: its t_len and zeros.
    fn tuple(len: usize) -> Vec<u8> {
        let mut row = vec![0; len];
        row[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        row
    }

    fn encoded(rows: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        put_u32(&mut bytes, 1);
        put_u32(&mut bytes, 23);
        put_u32(&mut bytes, u32::MAX);
        put_u32(&mut bytes, rows.len() as u32);
        for row in rows {
            put_row(&mut bytes, row);
        }
        bytes
    }

    #[test]
    fn encoded_results_decode() {
        let rows = [tuple(24), tuple(17), tuple(MINIMAL_TUPLE_HEADER)];
        let bytes = encoded(&rows);
        assert_eq!(column_types(&bytes), Some(vec![(pg_sys::Oid::from(23), -1)]));
        let decoded: Vec<&[u8]> = super::rows(&bytes).unwrap().map(|r| &bytes[r]).collect();
        assert_eq!(decoded, rows.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn malformed_results_are_refused() {
        let bytes = encoded(&[tuple(24), tuple(17)]);
        assert!(rows(&bytes[..bytes.len() - 1]).is_none(), "truncated");
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(rows(&longer).is_none(), "trailing bytes");
        assert!(rows(&bytes[..3]).is_none(), "no header");
        assert!(rows(&encoded(&[vec![0; 3]])).is_none(), "shorter than a tuple header");
        let mut lying = tuple(24);
        lying[0] = 200;
        assert!(rows(&encoded(&[lying])).is_none(), "a tuple whose own length disagrees");
    }

    #[test]
    fn an_encoding_buffer_that_cannot_grow_says_so() {
        let mut out = encoded(&[tuple(24)]);
        let before = out.clone();
        // More than any allocator can give (and an overflowing size): refused, not an abort
        // or an ERROR, and what was kept is left as it was.
        assert!(!reserve(&mut out, isize::MAX as usize / 2, usize::MAX));
        assert!(!reserve(&mut out, usize::MAX, usize::MAX));
        assert_eq!(out, before);
        assert!(reserve(&mut out, 100, 1 << 20));
        assert!(out.capacity() >= before.len() + 100);
    }

    #[test]
    fn record_and_record_array_columns_are_found() {
        // Built-in types only: a user type would need the catalogs (it counts as holding one).
        let holds = |t| builtin_holds_anonymous_record(t).unwrap_or(true);
        let mut bytes = encoded(&[tuple(24)]);
        assert!(!record_column(&bytes, holds), "an int4 column");
        for record in [pg_sys::RECORDOID, pg_sys::RECORDARRAYOID] {
            bytes[4..8].copy_from_slice(&record.to_u32().to_le_bytes());
            assert!(is_well_formed(&bytes) && record_column(&bytes, holds), "{record:?}");
        }
        bytes[4..8].copy_from_slice(&pg_sys::FirstNormalObjectId.to_le_bytes());
        assert!(record_column(&bytes, holds), "a user type is looked up");
        assert!(record_column(&bytes[..6], holds), "no whole column header");
        assert_eq!(builtin_holds_anonymous_record(pg_sys::TEXTARRAYOID), Some(false));
    }
}
