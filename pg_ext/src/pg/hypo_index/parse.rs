//! Parsing CREATE INDEX: the statement resolved against the catalog (table, columns,
//! expressions, operator classes, predicate) into a hypothetical index, built nowhere.

use super::{cstr, HypoDescription, HypoIndex};
use crate::error::PitstopError;
use crate::pg::list::pointers;
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::PgTryBuilder;
use pitstop_core::advisor::size::{AccessMethod, BRIN_PAGES_PER_RANGE};
use std::ffi::{c_char, CStr, CString};

// `transformIndexStmt` (parser/parse_utilcmd.h) has no pgrx binding.
unsafe extern "C-unwind" {
    fn transformIndexStmt(
        relid: pg_sys::Oid,
        stmt: *mut pg_sys::IndexStmt,
        query: *const c_char,
    ) -> *mut pg_sys::IndexStmt;
}

const ACCESS_SHARE_LOCK: i32 = 1;

/// Resolves a CREATE INDEX statement into a hypothetical index (not yet registered).
/// Errors from Postgres itself (syntax, unknown table, unknown operator class) propagate as
/// Postgres ERRORs with their own SQLSTATE.
pub fn parse_create_index(ddl: &str) -> Result<HypoIndex, PitstopError> {
    let c_ddl = crate::pg::parse::c_text(ddl).ok_or(PitstopError::NotCreateIndex)?;
    // SAFETY: every pointer below comes from the parser/catalog functions called here and is
    // used while the memory context that holds it is alive. The new context is a child of
    // the caller's context until the index is complete, so an ERROR part-way frees it.
    unsafe {
        let memory = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"pitstop hypothetical index".as_ptr(),
            0,
            1024,
            8 * 1024,
        );
        let caller = pg_sys::MemoryContextSwitchTo(memory);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| resolve(&c_ddl)))
            .catch_others(|e| {
                pg_sys::MemoryContextSwitchTo(caller);
                e.rethrow()
            })
            .catch_rust_panic(|e| {
                pg_sys::MemoryContextSwitchTo(caller);
                e.rethrow()
            })
            .execute();
        pg_sys::MemoryContextSwitchTo(caller);
        match result {
            Ok(mut index) => {
                pg_sys::MemoryContextSetParent(memory, pg_sys::TopMemoryContext);
                index.memory = memory;
                Ok(index)
            }
            Err(e) => {
                pg_sys::MemoryContextDelete(memory);
                Err(e)
            }
        }
    }
}

/// # Safety
/// Runs in the index's own memory context (the current one); see `parse_create_index`.
unsafe fn resolve(c_ddl: &CStr) -> Result<HypoIndex, PitstopError> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let statements = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(
            c_ddl.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ));
        if statements.len() != 1 {
            return Err(PitstopError::NotOneStatement(statements.len()));
        }
        let node = (*statements[0]).stmt;
        if (*node).type_ != pg_sys::NodeTag::T_IndexStmt {
            return Err(PitstopError::NotCreateIndex);
        }
        let raw = node as *mut pg_sys::IndexStmt;
        let relid = pg_sys::RangeVarGetRelidExtended(
            (*raw).relation,
            ACCESS_SHARE_LOCK,
            0,
            None,
            std::ptr::null_mut(),
        );
        let relkind = pg_sys::get_rel_relkind(relid) as u8;
        if relkind != pg_sys::RELKIND_RELATION
            && relkind != pg_sys::RELKIND_MATVIEW
            && relkind != pg_sys::RELKIND_PARTITIONED_TABLE
        {
            return Err(PitstopError::UnsupportedRelation(
                cstr(pg_sys::get_rel_name(relid)).unwrap_or_default(),
            ));
        }
        let table = cstr(pg_sys::get_rel_name(relid)).unwrap_or_default();
        let stmt = pg_guard_ffi_boundary(|| transformIndexStmt(relid, raw, c_ddl.as_ptr()));

        let am_name = cstr((*stmt).accessMethod).unwrap_or_else(|| "btree".to_string());
        let am = AccessMethod::from_name(&am_name)
            .ok_or_else(|| PitstopError::UnsupportedAccessMethod(am_name.clone()))?;
        let c_am = CString::new(am_name.clone()).unwrap_or_default();
        let am_oid = pg_sys::get_am_oid(c_am.as_ptr(), false);
        let routine = pg_sys::GetIndexAmRoutineByAmId(am_oid, false);

        let keys = pointers::<pg_sys::IndexElem>((*stmt).indexParams);
        let includes = pointers::<pg_sys::IndexElem>((*stmt).indexIncludingParams);
        let lacks = |feature: &'static str| PitstopError::AccessMethodLacks {
            am: am_name.clone(),
            feature,
        };
        // CREATE INDEX's own limit: the planner sizes its per-index arrays by it, and a
        // hypothetical index past it made the next plan write out of bounds.
        if keys.len() + includes.len() > pg_sys::INDEX_MAX_KEYS as usize {
            return Err(PitstopError::TooManyColumns(pg_sys::INDEX_MAX_KEYS));
        }
        if keys.len() > 1 && !(*routine).amcanmulticol {
            return Err(lacks("multi-column indexes"));
        }
        if !includes.is_empty() && !(*routine).amcaninclude {
            return Err(lacks("INCLUDE columns"));
        }
        if (*stmt).unique && !(*routine).amcanunique {
            return Err(lacks("unique indexes"));
        }
        // The planner costs a hypothetical BRIN with the default range size (brincostestimate
        // cannot read another from an index that does not exist), and so is it sized.
        let ranged = |opt: &*mut pg_sys::DefElem| {
            cstr((**opt).defname).as_deref() == Some("pages_per_range")
                && f64::from(pg_sys::defGetInt32(*opt)) != BRIN_PAGES_PER_RANGE
        };
        if am == AccessMethod::Brin
            && pointers::<pg_sys::DefElem>((*stmt).options).iter().any(ranged)
        {
            return Err(lacks("a pages_per_range other than 128 in a hypothetical index"));
        }

        let deparse_cxt = pg_sys::deparse_context_for((*(*stmt).relation).relname, relid);
        let mut index = HypoIndex {
            desc: HypoDescription {
                oid: pg_sys::Oid::INVALID,
                name: String::new(),
                relid,
                am,
                am_name: am_name.clone(),
                key_columns: keys.len(),
                attnums: Vec::new(),
                column_names: Vec::new(),
                column_types: Vec::new(),
                descending: Vec::new(),
                nulls_first: Vec::new(),
                unique: (*stmt).unique,
                predicate_sql: None,
                covered_fraction: 1.0,
                column_widths: Vec::new(),
                key_ndistinct: Vec::new(),
            },
            am_oid,
            collations: Vec::new(),
            opfamilies: Vec::new(),
            opcintypes: Vec::new(),
            memory: std::ptr::null_mut(),
            expressions: std::ptr::null_mut(),
            predicate: std::ptr::null_mut(),
        };
        for (position, elem) in keys.iter().chain(includes.iter()).enumerate() {
            let is_key = position < keys.len();
            let (attnum, type_oid, typmod, mut collation, display) =
                if let Some(name) = cstr((**elem).name) {
                    let c_name = CString::new(name.clone()).unwrap_or_default();
                    let attnum = pg_sys::get_attnum(relid, c_name.as_ptr());
                    if attnum <= 0 {
                        return Err(PitstopError::UndefinedColumn {
                            column: name,
                            table: table.clone(),
                        });
                    }
                    let (mut t, mut m, mut c) = (pg_sys::Oid::INVALID, 0, pg_sys::Oid::INVALID);
                    pg_sys::get_atttypetypmodcoll(relid, attnum, &mut t, &mut m, &mut c);
                    (attnum, t, m, c, name)
                } else {
                    let expr = (**elem).expr;
                    let expr = pg_sys::eval_const_expressions(std::ptr::null_mut(), expr);
                    pg_sys::fix_opfuncids(expr);
                    index.expressions = pg_sys::lappend(index.expressions, expr.cast());
                    let text = cstr(pg_sys::deparse_expression(expr, deparse_cxt, false, false))
                        .unwrap_or_default();
                    (
                        0,
                        pg_sys::exprType(expr),
                        pg_sys::exprTypmod(expr),
                        pg_sys::exprCollation(expr),
                        text,
                    )
                };
            index.desc.attnums.push(attnum);
            index.desc.column_names.push(display);
            index.desc.column_types.push((type_oid, typmod));
            if !is_key {
                continue;
            }
            if !(**elem).collation.is_null() {
                collation = pg_sys::get_collation_oid((**elem).collation, false);
            }
            let opclass = pg_sys::ResolveOpClass((**elem).opclass, type_oid, c_am.as_ptr(), am_oid);
            index.collations.push(collation);
            index.opfamilies.push(pg_sys::get_opclass_family(opclass));
            index.opcintypes.push(pg_sys::get_opclass_input_type(opclass));
            let descending = (**elem).ordering == pg_sys::SortByDir::SORTBY_DESC;
            let nulls_first = match (**elem).nulls_ordering {
                pg_sys::SortByNulls::SORTBY_NULLS_FIRST => true,
                pg_sys::SortByNulls::SORTBY_NULLS_LAST => false,
                _ => descending,
            };
            let ordered = (**elem).ordering != pg_sys::SortByDir::SORTBY_DEFAULT
                || (**elem).nulls_ordering != pg_sys::SortByNulls::SORTBY_NULLS_DEFAULT;
            if ordered && !(*routine).amcanorder {
                return Err(lacks("ASC/DESC/NULLS options"));
            }
            index.desc.descending.push(descending);
            index.desc.nulls_first.push(nulls_first);
        }
        if !(*stmt).whereClause.is_null() {
            let clause = pg_sys::eval_const_expressions(std::ptr::null_mut(), (*stmt).whereClause);
            let clause = pg_sys::canonicalize_qual(clause.cast(), false);
            index.desc.predicate_sql =
                cstr(pg_sys::deparse_expression(clause.cast(), deparse_cxt, false, false));
            index.predicate = pg_sys::make_ands_implicit(clause);
            pg_sys::fix_opfuncids(index.predicate.cast());
        }
        index.desc.name =
            cstr((*stmt).idxname).unwrap_or_else(|| default_name(&table, &index.desc.column_names));
        Ok(index)
    }
}

/// `<table>_<columns>_hypo`, like Postgres' own default names with a marker.
fn default_name(table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| c.chars().filter(|ch| ch.is_alphanumeric() || *ch == '_').collect())
        .collect();
    format!("{table}_{}_hypo", cols.join("_"))
}
