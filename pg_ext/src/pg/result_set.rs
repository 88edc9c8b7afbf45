//! Query results in the cache's binary form: the column types, then each row as a Postgres
//! minimal tuple with every out-of-line (TOAST) value pulled inline, so a hit is copied back
//! into a tuplestore without parsing anything.
//!
//! Layout: u32 column count, (u32 type, i32 typmod) per column, u32 row count, then per row
//! u32 length + minimal tuple bytes.

use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::pg_sys;
use std::ffi::CString;

// `toast_flatten_tuple` (access/heaptoast.h) has no pgrx binding.
// `toast_flatten_tuple` (access/heaptoast.h) and `datumCopy` (utils/datum.h) have no pgrx
// binding.
unsafe extern "C-unwind" {
    fn toast_flatten_tuple(tup: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> pg_sys::HeapTuple;
    fn datumCopy(value: pg_sys::Datum, typ_by_val: bool, typ_len: i32) -> pg_sys::Datum;
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn get_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let value = u32::from_le_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?);
    *at += 4;
    Some(value)
}

/// Column types of an encoded result.
pub fn column_types(encoded: &[u8]) -> Option<Vec<(pg_sys::Oid, i32)>> {
    let mut at = 0;
    let natts = get_u32(encoded, &mut at)?;
    (0..natts)
        .map(|_| Some((pg_sys::Oid::from(get_u32(encoded, &mut at)?), get_u32(encoded, &mut at)? as i32)))
        .collect()
}

/// Each row's minimal tuple bytes.
fn rows(encoded: &[u8]) -> Option<Vec<&[u8]>> {
    let mut at = 0;
    let natts = get_u32(encoded, &mut at)? as usize;
    at += natts * 8;
    let nrows = get_u32(encoded, &mut at)?;
    (0..nrows)
        .map(|_| {
            let len = get_u32(encoded, &mut at)? as usize;
            let row = encoded.get(at..at + len)?;
            at += len;
            Some(row)
        })
        .collect()
}

/// Runs a read-only statement with text parameters through SPI and returns its result
/// encoded. SPI runs it as a non-read-only call so it gets a fresh snapshot, taken after
/// the caller read the relation versions (rule 5). Query errors are raised as usual.
pub fn execute(sql: &str, param_types: &[pg_sys::Oid], params: &[Option<String>]) -> Vec<u8> {
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
                    let c_text = CString::new(text.as_str()).unwrap_or_default();
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
            put_u32(&mut out, bytes.len() as u32);
            out.extend_from_slice(bytes);
            pg_sys::pfree(minimal.cast());
            pg_sys::heap_freetuple(tuple);
        }
        pg_sys::SPI_finish();
        out
    }
}

/// Why a caller's column list does not fit a result.
pub fn mismatch(expected: &[(pg_sys::Oid, String)], actual: &[(pg_sys::Oid, i32)]) -> Option<String> {
    if expected.len() != actual.len() {
        return Some(format!(
            "The query returns {} column(s) but the column definition list has {}.",
            actual.len(),
            expected.len()
        ));
    }
    expected.iter().zip(actual).enumerate().find(|(_, ((e, _), (a, _)))| e != a).map(|(i, ((_, name), (a, _)))| {
        format!("Column {} (\"{name}\") is {} in the result but {} in the column definition list.", i + 1, type_name(*a), type_name(expected[i].0))
    })
}

fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd name for any type OID.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(oid)).to_string_lossy().into_owned() }
}

/// The column types and names of a set-returning call's column definition list.
///
/// # Safety
/// `rsinfo` is the ReturnSetInfo of the current call (or NULL).
pub unsafe fn expected_columns(rsinfo: *mut pg_sys::ReturnSetInfo) -> Option<Vec<(pg_sys::Oid, String)>> {
    unsafe {
        if rsinfo.is_null() || (*rsinfo).expectedDesc.is_null() {
            return None;
        }
        let desc = (*rsinfo).expectedDesc;
        Some(
            (0..(*desc).natts as usize)
                .map(|i| {
                    let attr = (*desc).attrs.as_ptr().add(i);
                    let name = std::ffi::CStr::from_ptr((*attr).attname.data.as_ptr()).to_string_lossy().into_owned();
                    ((*attr).atttypid, name)
                })
                .collect(),
        )
    }
}

/// Returns the encoded rows to a set-returning function's caller in materialize mode.
///
/// # Safety
/// `rsinfo` is the current call's ReturnSetInfo, allowing materialize mode, and the encoded
/// result's columns match its expectedDesc (checked by the caller with `mismatch`).
pub unsafe fn materialize(rsinfo: *mut pg_sys::ReturnSetInfo, encoded: &[u8]) {
    unsafe {
        let per_query = (*(*rsinfo).econtext).ecxt_per_query_memory;
        let caller = pg_sys::MemoryContextSwitchTo(per_query);
        let desc = pg_sys::CreateTupleDescCopy((*rsinfo).expectedDesc);
        let store = pg_sys::tuplestore_begin_heap(true, false, pg_sys::work_mem);
        let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
        for row in rows(encoded).unwrap_or_default() {
            let copy = pg_sys::palloc(row.len()) as *mut u8;
            std::ptr::copy_nonoverlapping(row.as_ptr(), copy, row.len());
            pg_sys::ExecStoreMinimalTuple(copy.cast(), slot, true);
            pg_sys::tuplestore_puttupleslot(store, slot);
            pg_sys::ExecClearTuple(slot);
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
        (*rsinfo).setResult = store;
        (*rsinfo).setDesc = desc;
        pg_sys::MemoryContextSwitchTo(caller);
    }
}

/// The first column of the first row (a `cached_json` result), copied into the current
/// memory context; None when there is no row or it is NULL.
pub fn first_value(encoded: &[u8]) -> Option<pg_sys::Datum> {
    let types = column_types(encoded)?;
    let row = *rows(encoded)?.first()?;
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

    #[test]
    fn encoded_results_decode() {
        let mut bytes = Vec::new();
        put_u32(&mut bytes, 1);
        put_u32(&mut bytes, 23);
        put_u32(&mut bytes, u32::MAX);
        put_u32(&mut bytes, 2);
        for row in [&b"abc"[..], &b"de"[..]] {
            put_u32(&mut bytes, row.len() as u32);
            bytes.extend_from_slice(row);
        }
        assert_eq!(column_types(&bytes), Some(vec![(pg_sys::Oid::from(23), -1)]));
        assert_eq!(rows(&bytes), Some(vec![&b"abc"[..], &b"de"[..]]));
        assert_eq!(rows(&bytes[..bytes.len() - 1]), None, "truncated input is refused");
    }
}
