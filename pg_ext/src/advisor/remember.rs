//! Suggestions remembered in `pitstop.index_suggestions`, so that `pitstop.index_effect` can
//! later compare the statements an index was meant for before and after it was built.
//!
//! Only advice over pg_stat_statements is remembered (its statements have queryids to follow),
//! only when the caller may insert there and the transaction may write, and never at the cost
//! of the advice: a failure is a WARNING and the suggestions are still returned.

use crate::pg::{spi, subxact};
use pgrx::prelude::*;
use pitstop_core::advisor::candidates::{Candidate, KeyColumn};
use pitstop_core::advisor::size::AccessMethod;

/// One suggestion as remembered: the index, the statements it helps, its estimated gain.
pub struct Remembered<'a> {
    pub candidate: &'a Candidate,
    pub queryids: Vec<i64>,
    pub improvement_pct: f64,
}

/// Each privilege on its own: a list would mean "any of them".
const MAY_WRITE: &str = "SELECT NOT current_setting('transaction_read_only')::bool
                           AND has_table_privilege('pitstop.index_suggestions', 'INSERT')
                           AND has_table_privilege('pitstop.index_suggestions', 'UPDATE')
                           AND has_table_privilege('pitstop.index_suggestions', 'SELECT')
                           AND has_table_privilege('pitstop.query_snapshots', 'SELECT')
                           AND has_sequence_privilege('pitstop.index_suggestions_id_seq', 'USAGE')";

/// A suggestion already remembered and not yet built gets its latest time, gain and
/// statements, and its expression keys' texts, predicate, operator classes and sort orders
/// (which 0.3.0 and 0.4.0 did not all record: the same DDL has the same ones); one built since
/// is left alone and the suggestion starts a new row. The table's indexes at the first
/// suggestion (`existing_indexes`) are never taken for it: the advisor suggested it beside
/// them. A row from before 0.5.0 has no such list and gets today's.
const UPSERT: &str = "
    INSERT INTO pitstop.index_suggestions AS s (dbid, relid, table_name, key_attnums, include_attnums, partial,
                                               ddl, queryids, improvement_pct, first_suggested_at, last_suggested_at,
                                               access_method, key_expressions, predicate, key_opclasses,
                                               key_options, existing_indexes)
    SELECT d.oid, $1, $2, $3, $4, $5, $6, $7, $8, now(), now(), $9, $10, $11, $12, $13,
           ARRAY(SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = $1 ORDER BY 1)
      FROM pg_catalog.pg_database d WHERE d.datname = current_database()
    ON CONFLICT (dbid, ddl) WHERE index_oid IS NULL DO UPDATE
       SET last_suggested_at = excluded.last_suggested_at,
           improvement_pct = excluded.improvement_pct,
           key_expressions = excluded.key_expressions,
           predicate = excluded.predicate,
           key_opclasses = excluded.key_opclasses,
           key_options = excluded.key_options,
           existing_indexes = CASE WHEN s.relid = excluded.relid AND s.existing_indexes IS NOT NULL
                                   THEN s.existing_indexes ELSE excluded.existing_indexes END,
           -- The table may have been dropped and made again under its name since.
           relid = excluded.relid,
           key_attnums = excluded.key_attnums,
           include_attnums = excluded.include_attnums,
           queryids = ARRAY(SELECT DISTINCT q FROM unnest(s.queryids || excluded.queryids) AS q ORDER BY q)";

/// The access method as pg_am names it, which index_suggestions_observe matches.
fn access_method(am: AccessMethod) -> &'static str {
    match am {
        AccessMethod::Btree => "btree",
        AccessMethod::Hash => "hash",
        AccessMethod::Brin => "brin",
    }
}

/// A key's sort order as pg_index.indoption records it, which index_suggestions_observe
/// matches: INDOPTION_DESC (1), INDOPTION_NULLS_FIRST (2).
fn indoption(key: &KeyColumn) -> i16 {
    i16::from(key.descending) | (i16::from(key.nulls_first) << 1)
}

pub fn remember(suggestions: &[Remembered<'_>]) {
    if suggestions.is_empty() {
        return;
    }
    let outcome = subxact::try_kept(|| {
        spi::connect_mut(|client| {
            let may_write =
                client.select(MAY_WRITE, Some(1), &[])?.first().get_one::<bool>()?.unwrap_or(false);
            if !may_write {
                return Ok::<_, pgrx::spi::Error>(());
            }
            for s in suggestions {
                let c = s.candidate;
                let keys: Vec<i16> = c.keys.iter().map(|k| k.indkey()).collect();
                let include: Vec<i16> = c.include.iter().map(|(attnum, _)| *attnum).collect();
                let expressions: Vec<Option<String>> =
                    c.keys.iter().map(|k| k.expression.clone()).collect();
                let opclasses: Vec<Option<String>> =
                    c.keys.iter().map(|k| k.opclass.clone()).collect();
                let options: Vec<i16> = c.keys.iter().map(indoption).collect();
                client.update(
                    UPSERT,
                    None,
                    &[
                        pg_sys::Oid::from(c.relid).into(),
                        c.table.clone().into(),
                        keys.into(),
                        include.into(),
                        c.predicate.is_some().into(),
                        c.ddl().into(),
                        s.queryids.clone().into(),
                        s.improvement_pct.into(),
                        access_method(c.am).into(),
                        expressions.into(),
                        c.predicate.clone().into(),
                        opclasses.into(),
                        options.into(),
                    ],
                )?;
            }
            client.update("SELECT pitstop.index_suggestions_observe()", None, &[])?;
            Ok(())
        })
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => pgrx::warning!("pitstop: suggestions not remembered for index_effect: {e}"),
        Err(e) => pgrx::warning!(
            "pitstop: suggestions not remembered for index_effect: {}",
            subxact::message(&e)
        ),
    }
}
