//! Cacheability of a statement, decided on its analysed and rewritten query tree (views
//! expanded): rules 1 and 3 of the result cache's correctness rules. Also infers the types
//! of its `$n` parameters, as PREPARE would.

use crate::error::PitstopError;
use crate::pg::list::pointers;
use crate::pg::syscache;
use pgrx::pg_sys;
use pitstop_core::cache::Bypass;
use std::ffi::{c_void, CStr};

pub struct Analysis {
    pub param_types: Vec<pg_sys::Oid>,
    /// Why the statement cannot be cached, if it cannot.
    pub bypass: Option<Bypass>,
    /// Per parameter: whether its type is not plain text, so that a value such as 'today'
    /// may be read as a date.
    pub param_not_text: Vec<bool>,
}

impl Analysis {
    /// Why these parameter values cannot be cached, if they cannot: one names a relative time
    /// ('today') in a parameter that is not plain text.
    pub fn params_bypass(&self, params: &[Option<&str>]) -> Option<Bypass> {
        let relative = params
            .iter()
            .zip(&self.param_not_text)
            .any(|(value, not_text)| *not_text && value.is_some_and(names_relative_time));
        relative.then_some(Bypass::RelativeTime)
    }
}

/// Built-in STABLE functions whose result changes without any table write: the clock,
/// settings outside the cache key, the session user and the connection (the key holds only
/// the current role), statistics and catalog lookups.
fn unstable_builtin(name: &str) -> bool {
    matches!(
        name,
        "now"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "current_setting"
            | "age"
            | "session_user"
            | "system_user"
            | "inet_client_addr"
            | "inet_client_port"
            | "inet_server_addr"
            | "inet_server_port"
    ) || ["pg_", "has_", "txid_", "to_reg", "current_"].iter().any(|p| name.starts_with(p))
        || runs_sql_or_resolves_names(name)
}

/// Built-in STABLE functions that run a query of their own (`table_to_xml` reads a view, whose
/// functions the cache never sees) or resolve or print a name under the session's search_path
/// and temporary schema when the query runs (`'t'::text::regclass`, `tableoid::regclass::text`).
fn runs_sql_or_resolves_names(name: &str) -> bool {
    name.contains("_to_xml")
        || matches!(
            name,
            "regclass"
                | "regclassin"
                | "regclassout"
                | "regtypeout"
                | "regprocout"
                | "regprocedureout"
                | "regoperout"
                | "regoperatorout"
                | "regconfigout"
                | "regdictionaryout"
                | "regnamespaceout"
                | "regcollationout"
                | "regtypein"
                | "regprocin"
                | "regprocedurein"
                | "regoperin"
                | "regoperatorin"
                | "regconfigin"
                | "regdictionaryin"
                | "regnamespacein"
                | "regrolein"
                | "regcollationin"
        )
}

/// Built-in functions that read text as a date or time when the query runs (a cast of a
/// column or parameter, or JSON turned into typed rows), where 'now', 'today', 'tomorrow'
/// and 'yesterday' read the clock.
fn parses_time_at_run_time(name: &str) -> bool {
    matches!(name, "date_in" | "time_in" | "timetz_in" | "timestamp_in" | "timestamptz_in")
        || ["json_populate_record", "jsonb_populate_record", "json_to_record", "jsonb_to_record"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// The date/time input words whose value is the clock's ('epoch' and 'infinity' are
/// constants). The datetime parser reads words as runs of ASCII letters, case-insensitively.
pub fn names_relative_time(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphabetic()).any(|word| {
        ["now", "today", "tomorrow", "yesterday"].iter().any(|w| word.eq_ignore_ascii_case(w))
    })
}

struct Walk {
    bypass: Option<Bypass>,
    relations: Vec<pg_sys::Oid>,
    /// Locations of the statement's string literals that name a relative time, and whether
    /// each was found as a constant of a plain text type (only those are harmless).
    relative_literals: Vec<(i32, bool)>,
    /// User-defined aggregates called: CREATE AGGREGATE records each as IMMUTABLE, whatever
    /// its support functions are, so those are judged after the walk.
    aggregates: Vec<pg_sys::Oid>,
    /// Whether a function makes json or jsonb, which calls the casts to json of the values'
    /// types (a user type's may read a setting).
    makes_json: bool,
}

impl Walk {
    fn found(&mut self, reason: Bypass) -> bool {
        self.bypass.get_or_insert(reason);
        true
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn function_check(funcid: pg_sys::Oid, context: *mut c_void) -> bool {
    // SAFETY: `context` is the Walk passed to check_functions_in_node below.
    unsafe {
        let walk = &mut *(context as *mut Walk);
        let user_defined = funcid.to_u32() >= pg_sys::FirstNormalObjectId;
        if user_defined && pg_sys::get_func_prokind(funcid) as u8 == b'a' {
            walk.aggregates.push(funcid);
        }
        let returns = pg_sys::get_func_rettype(funcid);
        if returns == pg_sys::JSONOID || returns == pg_sys::JSONBOID {
            walk.makes_json = true;
        }
        // pg_temp.f() names another function in every session.
        if user_defined && pg_sys::isAnyTempNamespace(pg_sys::get_func_namespace(funcid)) {
            return walk.found(Bypass::TemporaryTable);
        }
        match pg_sys::func_volatile(funcid) as u8 {
            b'v' => walk.found(Bypass::VolatileFunction),
            b's' => {
                let name = pg_sys::get_func_name(funcid);
                let name = if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                };
                if user_defined || unstable_builtin(&name) {
                    walk.found(Bypass::StableFunction)
                } else if parses_time_at_run_time(&name) {
                    walk.found(Bypass::RelativeTime)
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

/// Why a read of this relation cannot be cached, if it cannot: the one place that decides,
/// for the relations the analysed query names and for every relation a fill actually read.
/// The rules apply to the relation and to its partition ancestors; of the relations
/// inheriting from it, a temporary one (any session's) is enough: another session's is
/// invisible to this one, so the same query reads other rows in each. `relkind` is looked up
/// when not given.
pub fn relation_bypass(relid: pg_sys::Oid, relkind: Option<std::ffi::c_char>) -> Option<Bypass> {
    // SAFETY: a catalog lookup by OID; get_rel_relkind returns 0 for a relation that does
    // not exist, which is checked before anything that needs it.
    let kind = |relid| unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    let temporary = |relid| {
        // SAFETY: as above, a catalog lookup by OID.
        let persistence = unsafe { pg_sys::get_rel_persistence(relid) };
        persistence as u8 == pg_sys::RELPERSISTENCE_TEMP
    };
    let rules = |relid: pg_sys::Oid, relkind: u8| -> Option<Bypass> {
        if relid.to_u32() < pg_sys::FirstNormalObjectId {
            return Some(Bypass::SystemCatalog);
        }
        match relkind {
            // Dropped meanwhile: nothing can be said about it.
            0 => return Some(Bypass::InternalError),
            pg_sys::RELKIND_FOREIGN_TABLE => return Some(Bypass::ForeignTable),
            // nextval() and setval() change a sequence without the executor.
            pg_sys::RELKIND_SEQUENCE => return Some(Bypass::Sequence),
            _ => {}
        }
        if temporary(relid) {
            return Some(Bypass::TemporaryTable);
        }
        // SAFETY: as above.
        let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::Oid::INVALID, true) };
        (rls != pg_sys::CheckEnableRlsResult::RLS_NONE as i32).then_some(Bypass::RowLevelSecurity)
    };
    use crate::pg::result_set::{ancestors, inheritors};
    rules(relid, relkind.map_or_else(|| kind(relid), |k| k as u8))
        .or_else(|| ancestors(relid).into_iter().find_map(|r| rules(r, kind(r))))
        .or_else(|| {
            inheritors(relid)
                .into_iter()
                .any(|r| kind(r) != 0 && temporary(r))
                .then_some(Bypass::TemporaryTable)
        })
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    // SAFETY: called by the tree walkers with nodes of an analysed query and our Walk.
    unsafe {
        if node.is_null() {
            return false;
        }
        let walk = &mut *(context as *mut Walk);
        // A type named in the query resolves through the session's own temporary schema
        // first: `5::d`, `array[]::d[]`, `$1::d`, a column definition list.
        if has_expression_type((*node).type_) {
            let typid = pg_sys::exprType(node);
            if temporary_type(typid, 0) {
                return walk.found(Bypass::TemporaryTable);
            }
            // A value holding a name (`'{t}'::regclass[]`, `tableoid::regclass`, a row with a
            // regclass field); a plain reg* constant is judged by the object it names, below.
            let judged_constant =
                (*node).type_ == pg_sys::NodeTag::T_Const && names_one_object(typid);
            if !judged_constant && names_an_object(typid) {
                return walk.found(Bypass::TemporaryTable);
            }
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                let query = node as *mut pg_sys::Query;
                if !(*query).rowMarks.is_null() || (*query).hasForUpdate {
                    return walk.found(Bypass::ForUpdate);
                }
                return query_tree_walker(
                    query,
                    Some(walker),
                    context,
                    pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
                );
            }
            pg_sys::NodeTag::T_RangeTblEntry => {
                // TABLESAMPLE draws other rows on every run.
                if !(*(node as *mut pg_sys::RangeTblEntry)).tablesample.is_null() {
                    return walk.found(Bypass::VolatileFunction);
                }
                if let Some((relid, relkind)) =
                    crate::pg::range_table::relation(node as *mut pg_sys::RangeTblEntry)
                {
                    if let Some(reason) = relation_bypass(relid, Some(relkind)) {
                        return walk.found(reason);
                    }
                    walk.relations.push(relid);
                }
                return false;
            }
            pg_sys::NodeTag::T_SQLValueFunction => {
                // CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME…: the clock; SESSION_USER: the
                // login, which SET ROLE leaves alone. CURRENT_USER, USER, CURRENT_ROLE,
                // CURRENT_CATALOG and CURRENT_SCHEMA are in the key (role, database, search_path).
                let op = (*(node as *mut pg_sys::SQLValueFunction)).op;
                if op <= pg_sys::SQLValueFunctionOp::SVFOP_LOCALTIMESTAMP_N
                    || op == pg_sys::SQLValueFunctionOp::SVFOP_SESSION_USER
                {
                    return walk.found(Bypass::StableFunction);
                }
            }
            pg_sys::NodeTag::T_Const if names_temporary_object(node as *mut pg_sys::Const) => {
                return walk.found(Bypass::TemporaryTable);
            }
            // OPERATOR(pg_temp.===) is another operator in each session.
            pg_sys::NodeTag::T_OpExpr
            | pg_sys::NodeTag::T_DistinctExpr
            | pg_sys::NodeTag::T_NullIfExpr
                if temporary_object(Catalog::Operator, (*(node as *mut pg_sys::OpExpr)).opno) =>
            {
                return walk.found(Bypass::TemporaryTable);
            }
            pg_sys::NodeTag::T_ScalarArrayOpExpr
                if temporary_object(
                    Catalog::Operator,
                    (*(node as *mut pg_sys::ScalarArrayOpExpr)).opno,
                ) =>
            {
                return walk.found(Bypass::TemporaryTable);
            }
            pg_sys::NodeTag::T_RangeTblFunction => {
                let coltypes =
                    crate::pg::list::cells((*(node as *mut pg_sys::RangeTblFunction)).funccoltypes);
                if coltypes.iter().any(|cell| temporary_type(cell.oid_value, 0)) {
                    return walk.found(Bypass::TemporaryTable);
                }
            }
            pg_sys::NodeTag::T_Const => {
                let constant = node as *mut pg_sys::Const;
                let location = (*constant).location;
                if let Some(index) =
                    walk.relative_literals.iter().position(|(at, _)| *at == location)
                {
                    // The literal was read as something else than text (a date, an array or
                    // range of dates, JSON a function may turn into dates…) when parsed.
                    if !plain_text((*constant).consttype) {
                        return walk.found(Bypass::RelativeTime);
                    }
                    walk.relative_literals[index].1 = true;
                }
            }
            // Text read as a date or time when the query runs (date_in and friends are
            // caught by name; this catches arrays, ranges and row types of them).
            pg_sys::NodeTag::T_CoerceViaIO
                if involves_time((*(node as *mut pg_sys::CoerceViaIO)).resulttype, 0) =>
            {
                return walk.found(Bypass::RelativeTime);
            }
            pg_sys::NodeTag::T_TableFunc => {
                let coltypes = crate::pg::list::cells((*(node as *mut pg_sys::TableFunc)).coltypes);
                if coltypes.iter().any(|cell| temporary_type(cell.oid_value, 0)) {
                    return walk.found(Bypass::TemporaryTable);
                }
                if coltypes.iter().any(|cell| involves_time(cell.oid_value, 0)) {
                    return walk.found(Bypass::RelativeTime);
                }
                if coltypes.iter().any(|cell| names_an_object(cell.oid_value)) {
                    return walk.found(Bypass::TemporaryTable);
                }
                if coltypes.iter().any(|cell| runs_domain_checks(cell.oid_value)) {
                    return walk.found(Bypass::StableFunction);
                }
            }
            pg_sys::NodeTag::T_NextValueExpr => return walk.found(Bypass::VolatileFunction),
            pg_sys::NodeTag::T_CoerceToDomain
                if runs_domain_checks((*(node as *mut pg_sys::CoerceToDomain)).resulttype) =>
            {
                return walk.found(Bypass::StableFunction);
            }
            _ => {}
        }
        if pg_sys::check_functions_in_node(node, Some(function_check), context) {
            return true;
        }
        expression_tree_walker(node, Some(walker), context)
    }
}

type NodeWalker = Option<unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> bool>;

// The walkers over analysed trees, declared here unguarded (pgrx's bindings guard each call,
// and an ERROR crossing a guard nested in another aborts the backend): the walk recurses
// through `walker`, and a deep enough expression makes it raise "stack depth limit exceeded".
// The one guard is around the whole walk, in `analyze`; the callbacks are #[pg_guard] (a
// panic in one is an ERROR at its edge) and their frames own nothing to drop.
extern "C-unwind" {
    #[cfg_attr(not(feature = "pg15"), link_name = "expression_tree_walker_impl")]
    fn expression_tree_walker(
        node: *mut pg_sys::Node,
        walker: NodeWalker,
        context: *mut c_void,
    ) -> bool;
    #[cfg_attr(not(feature = "pg15"), link_name = "query_tree_walker_impl")]
    fn query_tree_walker(
        query: *mut pg_sys::Query,
        walker: NodeWalker,
        context: *mut c_void,
        flags: std::ffi::c_int,
    ) -> bool;
}

/// Expression nodes whose type `exprType` reports and a query can choose by name (other
/// nodes are boolean, have no type, or are not expressions: exprType refuses those).
fn has_expression_type(tag: pg_sys::NodeTag) -> bool {
    use pg_sys::NodeTag::*;
    matches!(
        tag,
        T_Var
            | T_Const
            | T_Param
            | T_Aggref
            | T_WindowFunc
            | T_SubscriptingRef
            | T_FuncExpr
            | T_OpExpr
            | T_NullIfExpr
            | T_FieldSelect
            | T_FieldStore
            | T_RelabelType
            | T_CoerceViaIO
            | T_ArrayCoerceExpr
            | T_ConvertRowtypeExpr
            | T_CollateExpr
            | T_CaseExpr
            | T_CaseTestExpr
            | T_ArrayExpr
            | T_RowExpr
            | T_CoalesceExpr
            | T_MinMaxExpr
            | T_CoerceToDomain
            | T_CoerceToDomainValue
            | T_SetToDefault
    )
}

/// Catalogs of objects that live in a schema and that a reg* constant or a node can name.
#[derive(Clone, Copy)]
enum Catalog {
    Relation,
    Function,
    Operator,
    Collation,
    TextSearchConfiguration,
    TextSearchDictionary,
}

/// Whether an object lives in a temporary schema (any session's); false for built-in and
/// missing objects.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn temporary_object(catalog: Catalog, oid: pg_sys::Oid) -> bool {
    use pg_sys::SysCacheIdentifier::*;
    if oid.to_u32() < pg_sys::FirstNormalObjectId {
        return false;
    }
    let (cache, class) = match catalog {
        Catalog::Relation => (RELOID, pg_sys::RelationRelationId),
        Catalog::Function => (PROCOID, pg_sys::ProcedureRelationId),
        Catalog::Operator => (OPEROID, pg_sys::OperatorRelationId),
        Catalog::Collation => (COLLOID, pg_sys::CollationRelationId),
        // pg_ts_config and pg_ts_dict (no bindings for their OIDs).
        Catalog::TextSearchConfiguration => (TSCONFIGOID, pg_sys::Oid::from(3602)),
        Catalog::TextSearchDictionary => (TSDICTOID, pg_sys::Oid::from(3600)),
    };
    // SAFETY: the caller's contract; get_object_namespace raises for a missing object, which
    // the existence probe rules out first.
    unsafe {
        let (key, none) = (pg_sys::Datum::from(oid), pg_sys::Datum::from(0));
        if !pg_sys::SearchSysCacheExists(cache as i32, key, none, none, none) {
            return false;
        }
        let address = pg_sys::ObjectAddress { classId: class, objectId: oid, objectSubId: 0 };
        let namespace = pg_sys::get_object_namespace(&address);
        namespace != pg_sys::Oid::INVALID && pg_sys::isAnyTempNamespace(namespace)
    }
}

/// Whether a type lives in a temporary schema (any session's: a temporary domain, enum or
/// composite type, a temporary table's row type), or is an array, domain or range built on
/// one. Type names resolve through the session's own temporary schema first, so the same
/// text means another type in each session.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn temporary_type(typid: pg_sys::Oid, depth: u32) -> bool {
    if typid.to_u32() < pg_sys::FirstNormalObjectId {
        return false;
    }
    if depth > 8 {
        return true;
    }
    // SAFETY: the caller's contract; the pg_type row is read while the syscache pins it.
    unsafe {
        let row = syscache::with_row(pg_sys::SysCacheIdentifier::TYPEOID, typid, |tuple| {
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_type>(tuple);
            ((*form).typnamespace, (*form).typtype as u8, (*form).typbasetype)
        });
        let Some((namespace, typtype, base)) = row else {
            return false;
        };
        if pg_sys::isAnyTempNamespace(namespace) {
            return true;
        }
        let element = pg_sys::get_element_type(typid);
        let under = match typtype {
            _ if element != pg_sys::Oid::INVALID => element,
            pg_sys::TYPTYPE_DOMAIN => base,
            pg_sys::TYPTYPE_RANGE => pg_sys::get_range_subtype(typid),
            pg_sys::TYPTYPE_MULTIRANGE => pg_sys::get_multirange_range(typid),
            _ => return false,
        };
        temporary_type(under, depth + 1)
    }
}

/// Whether a constant names an object in a temporary schema: `'t'::regclass`, `'d'::regtype`
/// or `'pg_temp.f'::regproc` resolve through the calling session's own temporary schema, so
/// the same text means another object in each session. (The constant's own type is checked
/// with every node's.)
///
/// # Safety
/// `constant` is a Const of an analysed query; catalog lookups inside a transaction.
unsafe fn names_temporary_object(constant: *mut pg_sys::Const) -> bool {
    // SAFETY: the caller's contract; reg* constants hold an Oid (lookups of a missing
    // object find nothing).
    unsafe {
        if (*constant).constisnull {
            return false;
        }
        let oid = pg_sys::Oid::from((*constant).constvalue.value() as u32);
        let catalog = match (*constant).consttype {
            pg_sys::REGCLASSOID => Catalog::Relation,
            pg_sys::REGPROCOID | pg_sys::REGPROCEDUREOID => Catalog::Function,
            pg_sys::REGOPEROID | pg_sys::REGOPERATOROID => Catalog::Operator,
            pg_sys::REGCOLLATIONOID => Catalog::Collation,
            pg_sys::REGCONFIGOID => Catalog::TextSearchConfiguration,
            pg_sys::REGDICTIONARYOID => Catalog::TextSearchDictionary,
            pg_sys::REGNAMESPACEOID => {
                return oid != pg_sys::Oid::INVALID && pg_sys::isAnyTempNamespace(oid)
            }
            pg_sys::REGTYPEOID => return temporary_type(oid, 0),
            _ => return false,
        };
        temporary_object(catalog, oid)
    }
}

/// Whether a constant of this type holds one name that `names_temporary_object` judges.
fn names_one_object(typid: pg_sys::Oid) -> bool {
    [
        pg_sys::REGCLASSOID,
        pg_sys::REGPROCOID,
        pg_sys::REGPROCEDUREOID,
        pg_sys::REGOPEROID,
        pg_sys::REGOPERATOROID,
        pg_sys::REGCOLLATIONOID,
        pg_sys::REGCONFIGOID,
        pg_sys::REGDICTIONARYOID,
        pg_sys::REGNAMESPACEOID,
        pg_sys::REGTYPEOID,
        pg_sys::REGROLEOID,
    ]
    .contains(&typid)
}

/// Whether values of this type are text (or arrays or domains of text), whose input never
/// reads the clock.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn plain_text(typid: pg_sys::Oid) -> bool {
    // SAFETY: the caller's contract.
    let scalar = unsafe { scalar_type(typid) };
    [pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID, pg_sys::NAMEOID, pg_sys::CHAROID]
        .contains(&scalar)
}

/// The type of a value's scalar parts: a domain's base type, an array's element type.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn scalar_type(typid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: the caller's contract.
    unsafe {
        let base = pg_sys::getBaseType(typid);
        let element = pg_sys::get_element_type(base);
        if element == pg_sys::Oid::INVALID {
            base
        } else {
            pg_sys::getBaseType(element)
        }
    }
}

/// Whether reading a value of this type from text may read a date or time: date/time types
/// and the domains, arrays, ranges and row types built on them (pseudo-types such as
/// `record` count, being unknown).
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn involves_time(typid: pg_sys::Oid, depth: u32) -> bool {
    let time = [
        pg_sys::DATEOID,
        pg_sys::TIMEOID,
        pg_sys::TIMETZOID,
        pg_sys::TIMESTAMPOID,
        pg_sys::TIMESTAMPTZOID,
    ];
    // SAFETY: the caller's contract.
    unsafe { type_holds(typid, depth, &|t| time.contains(&t), true) }
}

/// Whether a value of this type holds a name looked up when the query runs, through the
/// session's own temporary schema first: a reg* type (`regclass`, `regtype`, …), or a domain,
/// array, range or row type built on one.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn names_an_object(typid: pg_sys::Oid) -> bool {
    let reg = [
        pg_sys::REGCLASSOID,
        pg_sys::REGTYPEOID,
        pg_sys::REGPROCOID,
        pg_sys::REGPROCEDUREOID,
        pg_sys::REGOPEROID,
        pg_sys::REGOPERATOROID,
        pg_sys::REGCONFIGOID,
        pg_sys::REGDICTIONARYOID,
        pg_sys::REGNAMESPACEOID,
        pg_sys::REGROLEOID,
        pg_sys::REGCOLLATIONOID,
    ];
    // SAFETY: the caller's contract.
    unsafe { type_holds(typid, 0, &|t| reg.contains(&t), false) }
}

/// Whether coercing a value to this type runs a domain's constraints (a CHECK may call any
/// function, `current_setting` among them): a domain that has some, or an array, range or row
/// type built on one.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn runs_domain_checks(typid: pg_sys::Oid) -> bool {
    // SAFETY: the caller's contract; DomainHasConstraints is false for other types.
    unsafe {
        type_holds(
            typid,
            0,
            &|t| {
                t.to_u32() >= pg_sys::FirstNormalObjectId
                    && pg_sys::get_typtype(t) as u8 == pg_sys::TYPTYPE_DOMAIN
                    && pg_sys::DomainHasConstraints(t)
            },
            false,
        )
    }
}

/// Whether `found` holds for this type, its domain's base type, or a type it is built on
/// (array element, range subtype, row type attribute); a pseudo-type counts as `pseudo`, and
/// a nesting deeper than 8 as found.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn type_holds(
    typid: pg_sys::Oid,
    depth: u32,
    found: &dyn Fn(pg_sys::Oid) -> bool,
    pseudo: bool,
) -> bool {
    // SAFETY: the caller's contract; the row type's descriptor is a copy we free.
    unsafe {
        if depth > 8 {
            return true;
        }
        if found(typid) {
            return true;
        }
        let base = pg_sys::getBaseType(typid);
        if base != typid && found(base) {
            return true;
        }
        let element = pg_sys::get_element_type(base);
        if element != pg_sys::Oid::INVALID {
            return type_holds(element, depth + 1, found, pseudo);
        }
        match pg_sys::get_typtype(base) as u8 {
            pg_sys::TYPTYPE_RANGE => {
                type_holds(pg_sys::get_range_subtype(base), depth + 1, found, pseudo)
            }
            pg_sys::TYPTYPE_MULTIRANGE => {
                type_holds(pg_sys::get_multirange_range(base), depth + 1, found, pseudo)
            }
            pg_sys::TYPTYPE_PSEUDO => pseudo,
            pg_sys::TYPTYPE_COMPOSITE => {
                let desc = pg_sys::lookup_rowtype_tupdesc_copy(base, -1);
                let attributes = crate::pg::tuple_desc::attributes(desc);
                let held = attributes
                    .iter()
                    .any(|a| !a.attisdropped && type_holds(a.atttypid, depth + 1, found, pseudo));
                pg_sys::FreeTupleDesc(desc);
                held
            }
            _ => false,
        }
    }
}

// Walks raw parse trees; declared here, unguarded, on every version (pgrx binds 16+'s, each
// call guarded): the walk recurses through raw_walker, and a guard nested in another aborts
// the backend on an ERROR. The one guard is around the whole walk.
#[cfg(feature = "pg15")]
extern "C-unwind" {
    fn raw_expression_tree_walker(
        node: *mut pg_sys::Node,
        walker: unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> bool,
        context: *mut c_void,
    ) -> bool;
}
#[cfg(not(feature = "pg15"))]
extern "C-unwind" {
    fn raw_expression_tree_walker_impl(
        node: *mut pg_sys::Node,
        walker: Option<unsafe extern "C-unwind" fn(*mut pg_sys::Node, *mut c_void) -> bool>,
        context: *mut c_void,
    ) -> bool;
}

/// The string literal's text, if `node` is one.
///
/// # Safety
/// `node` is a node of a raw parse tree.
unsafe fn string_literal<'a>(node: *mut pg_sys::Node) -> Option<&'a CStr> {
    // SAFETY: the caller's contract; an A_Const holding a String keeps its text in it.
    unsafe {
        if (*node).type_ != pg_sys::NodeTag::T_A_Const {
            return None;
        }
        let constant = node as *mut pg_sys::A_Const;
        let text = (!(*constant).isnull && (*constant).val.node.type_ == pg_sys::NodeTag::T_String)
            .then(|| (*constant).val.sval.sval);
        text.filter(|t| !t.is_null()).map(|t| CStr::from_ptr(t))
    }
}

/// Collects the locations of string literals that name a relative time. The parser turns
/// `'now'::timestamptz`, `date 'today'` or `created > 'yesterday'` into constants before the
/// analysed tree exists: only the raw tree still shows the word.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn raw_walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    // SAFETY: called by raw_expression_tree_walker with nodes of a raw tree and our Vec.
    unsafe {
        if node.is_null() {
            return false;
        }
        if let Some(text) = string_literal(node) {
            if names_relative_time(&text.to_string_lossy()) {
                (*(context as *mut Vec<(i32, bool)>))
                    .push(((*(node as *mut pg_sys::A_Const)).location, false));
            }
            return false;
        }
        #[cfg(feature = "pg15")]
        return raw_expression_tree_walker(node, raw_walker, context);
        #[cfg(not(feature = "pg15"))]
        return raw_expression_tree_walker_impl(node, Some(raw_walker), context);
    }
}

/// `sql` must be exactly one SELECT (by its parse tree; analysis checks the rest).
pub fn require_select(sql: &str) -> Result<(), PitstopError> {
    let kind = crate::pg::parse::single_explainable_statement(sql)?;
    if kind != crate::pg::parse::StatementKind::Select {
        return Err(PitstopError::NotReadOnly(format!("{kind:?}").to_uppercase()));
    }
    Ok(())
}

/// Parses and analyses `sql`: it must be one plain read-only SELECT. Syntax and name errors
/// are Postgres' own ERRORs; anything else that is not a SELECT is a PitstopError.
pub fn analyze(sql: &str) -> Result<Analysis, PitstopError> {
    require_select(sql)?;
    let c_sql = crate::pg::parse::c_text(sql).ok_or(PitstopError::NotOneStatement(0))?;
    // SAFETY: parse analysis of one statement in the current memory context, as PREPARE
    // does; the trees are only read, by the walkers above.
    unsafe {
        let raw = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(
            c_sql.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ))[0];
        // Read before analysis, which may scribble on the raw tree. An ERROR in the walk
        // (an unknown node) becomes a Rust panic here; raw_walker's frames own nothing.
        let mut relative_literals: Vec<(i32, bool)> = Vec::new();
        let literals = &mut relative_literals as *mut Vec<(i32, bool)> as *mut c_void;
        pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| raw_walker((*raw).stmt, literals));
        let mut param_types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut param_count: std::ffi::c_int = 0;
        let queries = pointers::<pg_sys::Query>(pg_sys::pg_analyze_and_rewrite_varparams(
            raw,
            c_sql.as_ptr(),
            &mut param_types,
            &mut param_count,
            std::ptr::null_mut(),
        ));
        let mut walk = Walk {
            bypass: None,
            relations: Vec::new(),
            relative_literals,
            aggregates: Vec::new(),
            makes_json: false,
        };
        for query in &queries {
            if (**query).commandType != pg_sys::CmdType::CMD_SELECT || (**query).hasModifyingCTE {
                return Err(PitstopError::NotReadOnly("data-modifying".into()));
            }
            if !(**query).utilityStmt.is_null() {
                return Err(PitstopError::NotReadOnly("utility".into()));
            }
            let context = &mut walk as *mut Walk as *mut c_void;
            pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| {
                walker(*query as *mut pg_sys::Node, context)
            });
        }
        let param_types: Vec<pg_sys::Oid> =
            (0..param_count.max(0) as usize).map(|i| *param_types.add(i)).collect();
        let param_not_text = param_types.iter().map(|t| !plain_text(*t)).collect();
        // A literal naming a relative time that did not stay a text constant.
        if walk.relative_literals.iter().any(|(_, text)| !text) {
            walk.bypass.get_or_insert(Bypass::RelativeTime);
        }
        // A parameter of a reg* type is a name resolved when the query runs, through the
        // session's own temporary schema first.
        if param_types.iter().any(|t| names_an_object(*t)) {
            walk.bypass.get_or_insert(Bypass::TemporaryTable);
        }
        // A parameter of a domain type is read through its constraints when the query runs.
        if param_types.iter().any(|t| runs_domain_checks(*t)) {
            walk.bypass.get_or_insert(Bypass::StableFunction);
        }
        if walk.bypass.is_none() {
            walk.bypass = code_the_walk_cannot_see(&walk.aggregates, walk.makes_json);
        }
        if walk.bypass.is_none() && replicated_into(&walk.relations) {
            walk.bypass = Some(Bypass::Subscriber);
        }
        Ok(Analysis { param_types, bypass: walk.bypass, param_not_text })
    }
}

/// Why functions the analysed query does not name, but runs, keep it out of the cache: the
/// support functions of its user-defined aggregates, and, when it makes json or jsonb, the
/// casts to json that the database defines with a function that is not IMMUTABLE (to_json
/// calls the cast of each value's type, also inside rows and arrays).
fn code_the_walk_cannot_see(aggregates: &[pg_sys::Oid], makes_json: bool) -> Option<Bypass> {
    if aggregates.is_empty() && !makes_json {
        return None;
    }
    let volatility: Option<String> = crate::pg::spi::connect(|client| {
        crate::pg::spi::select_one(
            client,
            "SELECT CASE WHEN bool_or(p.provolatile = 'v') THEN 'v' WHEN bool_or(p.provolatile = 's') THEN 's' END
               FROM (SELECT f.oid
                       FROM pg_catalog.pg_aggregate a,
                            LATERAL pg_catalog.unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
                                                            a.aggserialfn, a.aggdeserialfn, a.aggmtransfn,
                                                            a.aggminvtransfn, a.aggmfinalfn]::pg_catalog.oid[]) AS f(oid)
                      WHERE a.aggfnoid = ANY ($1)
                     UNION ALL
                     SELECT c.castfunc FROM pg_catalog.pg_cast c
                      WHERE $2 AND c.casttarget IN ('pg_catalog.json'::pg_catalog.regtype,
                                                    'pg_catalog.jsonb'::pg_catalog.regtype)) AS f
               JOIN pg_catalog.pg_proc p ON p.oid = f.oid",
            &[aggregates.to_vec().into(), makes_json.into()],
        )
    });
    match volatility.as_deref() {
        Some("v") => Some(Bypass::VolatileFunction),
        Some(_) => Some(Bypass::StableFunction),
        None => None,
    }
}

/// Whether logical replication applies changes to any of these relations, to a partition
/// ancestor of one (rows routed down into it) or to anything inheriting from one: its apply
/// worker writes without the executor hooks, so versions would not move. Used for the
/// analysed query's relations and for every relation a fill read.
pub fn replicated_into(relations: &[pg_sys::Oid]) -> bool {
    if relations.is_empty() {
        return false;
    }
    use crate::pg::result_set::{ancestors, inheritors};
    let mut family: Vec<pg_sys::Oid> =
        relations.iter().flat_map(|r| [vec![*r], ancestors(*r), inheritors(*r)].concat()).collect();
    family.sort_by_key(|o| o.to_u32());
    family.dedup();
    crate::pg::spi::connect(|client| {
        crate::pg::spi::select_one::<bool>(
            client,
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel WHERE srrelid = ANY ($1))",
            &[family.into()],
        )
    })
    .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::{names_relative_time, parses_time_at_run_time, unstable_builtin};

    #[test]
    fn clock_settings_and_catalog_functions_are_unstable() {
        for name in [
            "now",
            "current_setting",
            "pg_stat_get_live_tuples",
            "has_table_privilege",
            "to_regclass",
        ] {
            assert!(unstable_builtin(name), "{name}");
        }
        for name in ["to_char", "date_trunc", "timestamptz_pl_interval", "lower"] {
            assert!(!unstable_builtin(name), "{name}");
        }
    }

    #[test]
    fn the_session_user_and_the_connection_are_unstable() {
        for name in [
            "session_user",
            "system_user",
            "inet_client_addr",
            "inet_client_port",
            "inet_server_addr",
            "inet_server_port",
        ] {
            assert!(unstable_builtin(name), "{name}");
        }
        for name in ["timestamptz_in", "date_in", "jsonb_to_recordset", "json_populate_record"] {
            assert!(parses_time_at_run_time(name), "{name}");
        }
        assert!(!parses_time_at_run_time("int4in"));
    }

    #[test]
    fn relative_time_words_are_found_as_the_datetime_parser_splits_them() {
        for text in [
            "now",
            " NOW ",
            "Today",
            "tomorrow 10:00",
            "yesterday+02",
            "{now,2024-01-01}",
            "[today,)",
            "now America/New_York",
        ] {
            assert!(names_relative_time(text), "{text:?}");
        }
        for text in [
            "epoch",
            "infinity",
            "-infinity",
            "2024-01-01",
            "snow",
            "nowhere",
            "todays",
            "allballs",
            "",
        ] {
            assert!(!names_relative_time(text), "{text:?}");
        }
    }
}
