//! Query results in the cache's binary form: the column types, then each row as a Postgres
//! minimal tuple with every out-of-line (TOAST) value pulled inline, so a hit is copied back
//! into a tuplestore without parsing anything.
//!
//! Layout (little endian): u32 column count, (u32 type, i32 typmod) per column, u32 row
//! count, then per row u32 length and the minimal tuple bytes (whose own `t_len` says the
//! same length: checked before a row is used).

use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use crate::pg::unguarded;
use pgrx::pg_sys;
use std::ffi::CString;
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
    row.len() >= MINIMAL_TUPLE_HEADER && row[..4].try_into().map(u32::from_ne_bytes).ok() == Some(row.len() as u32)
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

/// Runs a read-only statement with text parameters through SPI and returns its result
/// encoded. SPI runs it as a non-read-only call so it gets a fresh snapshot, taken after
/// the caller read the relation versions (rule 5). Query errors are raised as usual.
pub fn execute(sql: &str, param_types: &[pg_sys::Oid], params: &[Option<&str>]) -> Vec<u8> {
    let c_sql = CString::new(sql).unwrap_or_default();
    // SAFETY: the classic SPI sequence (connect, prepare, execute, read SPI_tuptable,
    // finish); parameter Datums come from each type's input function. On ERROR the
    // transaction abort cleans the SPI stack.
    unsafe {
        if pg_sys::SPI_connect() < 0 {
            pgrx::error!("pitstop: SPI_connect failed");
        }
        let mut types = param_types.to_vec();
        let plan = pg_sys::SPI_prepare(c_sql.as_ptr(), types.len() as i32, types.as_mut_ptr());
        if plan.is_null() {
            pgrx::error!("pitstop: could not prepare the cached statement");
        }
        let mut values = Vec::with_capacity(params.len());
        let mut nulls = Vec::with_capacity(params.len());
        for (value, type_oid) in params.iter().zip(param_types) {
            match value {
                None => {
                    values.push(pg_sys::Datum::from(0));
                    nulls.push(b'n' as std::ffi::c_char);
                }
                Some(text) => {
                    let (mut input, mut io_param) = (pg_sys::Oid::INVALID, pg_sys::Oid::INVALID);
                    pg_sys::getTypeInputInfo(*type_oid, &mut input, &mut io_param);
                    let c_text = CString::new(*text).unwrap_or_default();
                    values.push(pg_sys::OidInputFunctionCall(input, c_text.as_ptr().cast_mut(), io_param, -1));
                    nulls.push(b' ' as std::ffi::c_char);
                }
            }
        }
        let status = pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), false, 0);
        if status != pg_sys::SPI_OK_SELECT as i32 {
            pgrx::error!("pitstop: the cached statement did not run as a SELECT ({status})");
        }
        let table = pg_sys::SPI_tuptable;
        let desc = (*table).tupdesc;
        let mut out = Vec::new();
        let natts = (*desc).natts as usize;
        put_u32(&mut out, natts as u32);
        for i in 0..natts {
            let attr = (*desc).attrs.as_ptr().add(i);
            put_u32(&mut out, (*attr).atttypid.to_u32());
            put_u32(&mut out, (*attr).atttypmod as u32);
        }
        let count = pg_sys::SPI_processed as usize;
        put_u32(&mut out, count as u32);
        for i in 0..count {
            let tuple = pg_guard_ffi_boundary(|| toast_flatten_tuple(*(*table).vals.add(i), desc));
            let minimal = pg_sys::minimal_tuple_from_heap_tuple(tuple);
            let bytes = std::slice::from_raw_parts(minimal as *const u8, (*minimal).t_len as usize);
            put_row(&mut out, bytes);
            pg_sys::pfree(minimal.cast());
            pg_sys::heap_freetuple(tuple);
        }
        pg_sys::SPI_finish();
        out
    }
}

/// Why the column definition list of a set-returning call does not fit an encoded result;
/// None when it fits. Compared in place: this runs on every cache hit.
///
/// # Safety
/// `expected` is the call's expectedDesc.
pub unsafe fn mismatch(expected: pg_sys::TupleDesc, encoded: &[u8]) -> Option<String> {
    unsafe {
        let natts = (*expected).natts as usize;
        let actual = column_count(encoded).unwrap_or(0);
        if natts != actual {
            return Some(format!(
                "The query returns {actual} column(s) but the column definition list has {natts}."
            ));
        }
        (0..natts).find_map(|i| {
            let attr = (*expected).attrs.as_ptr().add(i);
            let (actual_type, _) = column_type(encoded, i)?;
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
pub unsafe fn expected_desc(rsinfo: *mut pg_sys::ReturnSetInfo) -> Option<pg_sys::TupleDesc> {
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
pub unsafe fn materialize(rsinfo: *mut pg_sys::ReturnSetInfo, encoded: &[u8]) {
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
pub fn first_value(encoded: &[u8]) -> Option<pg_sys::Datum> {
    let types = column_types(encoded)?;
    let row = &encoded[rows(encoded)?.next()?];
    // SAFETY: the row is a minimal tuple of these column types; it is copied into palloc'd
    // memory, deformed through a slot, and the value copied out before the slot is dropped.
    unsafe {
        let desc = pg_sys::CreateTemplateTupleDesc(types.len() as i32);
        for (i, (type_oid, typmod)) in types.iter().enumerate() {
            pg_sys::TupleDescInitEntry(desc, (i + 1) as i16, std::ptr::null(), *type_oid, *typmod, 0);
        }
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        let copy = pg_sys::palloc(row.len()) as *mut u8;
        std::ptr::copy_nonoverlapping(row.as_ptr(), copy, row.len());
        pg_sys::ExecStoreMinimalTuple(copy.cast(), slot, true);
        pg_sys::slot_getsomeattrs_int(slot, 1);
        let value = if *(*slot).tts_isnull {
            None
        } else {
            let attr = (*desc).attrs.as_ptr();
            Some(pg_guard_ffi_boundary(|| datumCopy(*(*slot).tts_values, (*attr).attbyval, (*attr).attlen as i32)))
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

unsafe extern "C-unwind" {
    fn get_partition_ancestors(relid: pg_sys::Oid) -> *mut pg_sys::List;
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
}
