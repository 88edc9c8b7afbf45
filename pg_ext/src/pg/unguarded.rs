//! Postgres functions called without pgrx's per-call guard, for the paths every statement
//! takes (the executor hooks) or every cache hit (its rows, under one guard for all calls).
//!
//! pgrx wraps each `pg_sys` call in a guard (a `sigsetjmp`, ~140 instructions) that turns an
//! ERROR into a Rust panic, so that Rust frames between the ERROR and the next Postgres
//! handler run their destructors. A frame that owns nothing with a destructor at the call
//! (a "plain old frame" in the terms of Rust's C-unwind ABI) may instead be skipped by
//! Postgres' `longjmp`, exactly like a C frame (RFC 2945, "C-unwind" ABI). Callers of these
//! declarations must be such frames up to the next Postgres or pgrx handler: no live value
//! with a `Drop` and no `catch_unwind` in progress across the call, and any Rust code that
//! could panic run inside a `catch_unwind` of its own, before or after.

use pgrx::pg_sys;
use std::ffi::c_char;

unsafe extern "C-unwind" {
    pub fn standard_ExecutorStart(query_desc: *mut pg_sys::QueryDesc, eflags: i32);
}

#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" {
    pub fn standard_ExecutorRun(
        query_desc: *mut pg_sys::QueryDesc,
        direction: pg_sys::ScanDirection::Type,
        count: u64,
        execute_once: bool,
    );
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" {
    pub fn standard_ExecutorRun(
        query_desc: *mut pg_sys::QueryDesc,
        direction: pg_sys::ScanDirection::Type,
        count: u64,
    );
}

unsafe extern "C-unwind" {
    pub fn standard_ExecutorFinish(query_desc: *mut pg_sys::QueryDesc);
    pub fn standard_ExecutorEnd(query_desc: *mut pg_sys::QueryDesc);
    #[allow(clippy::too_many_arguments)]
    pub fn standard_ProcessUtility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
    pub fn InstrAlloc(
        n: i32,
        instrument_options: i32,
        async_mode: bool,
    ) -> *mut pg_sys::Instrumentation;
    pub fn InstrEndLoop(instr: *mut pg_sys::Instrumentation);
    pub fn ExecStoreMinimalTuple(
        tuple: pg_sys::MinimalTuple,
        slot: *mut pg_sys::TupleTableSlot,
        should_free: bool,
    ) -> *mut pg_sys::TupleTableSlot;
    pub fn tuplestore_puttupleslot(
        state: *mut pg_sys::Tuplestorestate,
        slot: *mut pg_sys::TupleTableSlot,
    );
    pub fn tuplestore_begin_heap(
        random_access: bool,
        inter_xact: bool,
        max_kbytes: i32,
    ) -> *mut pg_sys::Tuplestorestate;
    pub fn CreateTupleDescCopy(desc: pg_sys::TupleDesc) -> pg_sys::TupleDesc;
    pub fn MakeSingleTupleTableSlot(
        desc: pg_sys::TupleDesc,
        ops: *const pg_sys::TupleTableSlotOps,
    ) -> *mut pg_sys::TupleTableSlot;
    pub fn ExecDropSingleTupleTableSlot(slot: *mut pg_sys::TupleTableSlot);
    pub fn palloc(size: usize) -> *mut std::ffi::c_void;
    pub fn repalloc(pointer: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void;
    pub fn pfree(pointer: *mut std::ffi::c_void);
}
