//! EXPLAIN (FORMAT JSON) of a statement that is executing, as auto_explain does.

use pgrx::pg_sys;

/// The JSON plan of a finished-but-not-yet-ended statement; None if EXPLAIN raised an error
/// (which is caught and discarded: capture must never fail the statement).
pub fn plan_json_of(desc: *mut pg_sys::QueryDesc, with_actuals: bool) -> Option<String> {
    let explain = || {
        // SAFETY: `desc` is a started QueryDesc whose plan state is alive (we are called from
        // ExecutorEnd before the standard implementation frees it). The ExplainState and its
        // output live in the statement's query context, freed with the statement.
        unsafe {
            let caller = pg_sys::MemoryContextSwitchTo((*(*desc).estate).es_query_cxt);
            let es = pg_sys::NewExplainState();
            (*es).format = pg_sys::ExplainFormat::EXPLAIN_FORMAT_JSON;
            (*es).costs = true;
            (*es).verbose = false;
            (*es).analyze = with_actuals;
            (*es).timing = with_actuals;
            (*es).buffers = with_actuals;
            (*es).summary = with_actuals;
            pg_sys::ExplainBeginOutput(es);
            pg_sys::ExplainPrintPlan(es, desc);
            pg_sys::ExplainEndOutput(es);
            let out = std::ffi::CStr::from_ptr((*(*es).str_).data).to_string_lossy().into_owned();
            pg_sys::MemoryContextSwitchTo(caller);
            out
        }
    };
    let raw = crate::pg::subxact::shielded(explain)?;
    Some(as_json_object(&raw))
}

/// ExplainBeginOutput/EndOutput wrap a JSON plan in `[` … `]` around object members; like
/// auto_explain we turn the outer brackets into braces to get one object `{"Plan": …}`.
fn as_json_object(raw: &str) -> String {
    let trimmed = raw.trim();
    match (trimmed.strip_prefix('['), trimmed.strip_suffix(']')) {
        (Some(_), Some(_)) => format!("{{{}}}", &trimmed[1..trimmed.len() - 1]),
        _ => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn brackets_become_an_object() {
        assert_eq!(super::as_json_object("[\n  \"Plan\": {}\n]\n"), "{\n  \"Plan\": {}\n}");
    }
}
