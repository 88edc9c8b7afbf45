//! The C entry points of `pitstop.cached` and `pitstop.cached_json` (declared in
//! `cache/sql.rs`): they take `fcinfo` directly, because `cached` returns a set of
//! caller-described records and `cached_json` hands back the stored jsonb as is. They decode
//! the arguments and call the cache's engine. Their symbol names are bound by the SQL of
//! every released version.

use crate::cache::engine;
use crate::error::{required, OrReport, PitstopError};
use crate::pg::result_set::{self, Outcome, Target};
use pgrx::prelude::*;

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_pitstop_cached() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[unsafe(no_mangle)]
#[doc(hidden)]
pub extern "C" fn pg_finfo_pitstop_cached_json() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

struct Arguments {
    /// Borrowed from the (detoasted) argument, which outlives the call.
    query: &'static str,
    params: Option<pgrx::Array<'static, &'static str>>,
    ttl_micros: Option<i64>,
}

impl Arguments {
    /// The parameters, borrowed from the array argument (no copies: this runs on every hit).
    /// The list itself is as long as the caller's array: its allocation may fail.
    fn param_values(&self) -> Result<Vec<Option<&str>>, PitstopError> {
        let Some(array) = self.params.as_ref() else { return Ok(Vec::new()) };
        let mut values = Vec::new();
        values
            .try_reserve_exact(array.len())
            .map_err(|_| PitstopError::OutOfMemory("the parameter list"))?;
        values.extend(array.iter());
        Ok(values)
    }
}

/// # Safety
/// `fcinfo` is the call's FunctionCallInfo with the (text, text[], interval) arguments.
unsafe fn arguments(fcinfo: pg_sys::FunctionCallInfo) -> Arguments {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let arg = |i: usize| {
            let a = *(*fcinfo).args.as_ptr().add(i);
            (!a.isnull).then_some(a.value)
        };
        let query = arg(0).and_then(|d| <&str>::from_datum(d, false));
        let query = required(query, "query").or_report();
        let params = arg(1).and_then(|d| pgrx::Array::<&str>::from_datum(d, false));
        let ttl_micros = arg(2).map(|d| {
            let interval = &*(d.cast_mut_ptr::<pg_sys::Interval>());
            // In i128, where no interval overflows; a ttl past i64 microseconds (about
            // 292,000 years) never expires.
            const DAY: i128 = 86_400_000_000;
            let micros = i128::from(interval.time)
                + i128::from(interval.day) * DAY
                + i128::from(interval.month) * 30 * DAY;
            if micros <= 0 {
                PitstopError::OutOfRange {
                    name: "ttl",
                    value: format!("{micros} µs"),
                    expected: "a positive interval",
                }
                .report();
            }
            i64::try_from(micros).unwrap_or(i64::MAX)
        });
        Arguments { query, params, ttl_micros }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn pitstop_cached(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the function manager with a valid fcinfo; resultinfo is checked by
    // `rows_target` to be a ReturnSetInfo that accepts materialize mode before it is used.
    unsafe {
        let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
        let target = result_set::rows_target(rsinfo).ok_or(PitstopError::NoColumnList).or_report();
        let args = arguments(fcinfo);
        let params = args.param_values().or_report();
        engine::call(Target::Rows(target), args.query, &params, args.ttl_micros).or_report();
        pg_sys::Datum::from(0)
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn pitstop_cached_json(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: as above; the result is one jsonb Datum copied into the caller's context.
    unsafe {
        let args = arguments(fcinfo);
        let params = args.param_values().or_report();
        match engine::call(Target::FirstValue, args.query, &params, args.ttl_micros).or_report() {
            Outcome::Value(Some(value)) => value,
            Outcome::Value(None) | Outcome::Delivered => {
                (*fcinfo).isnull = true;
                pg_sys::Datum::from(0)
            }
        }
    }
}
