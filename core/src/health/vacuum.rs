//! What autovacuum decides for a table (PostgreSQL's `relation_needs_vacanalyze`): thresholds
//! from the table's own reloptions over the server settings, how close its xids are to
//! wraparound, and one status with the command that clears it. Pure: the rows come from
//! `sql/queries/vacuum_inputs.sql` through `health::read`.

/// Transaction ids (and multixact ids) wrap around after 2^31 of them.
pub const WRAPAROUND_IDS: f64 = 2_147_483_648.0;
/// Share of freeze_max_age at which a freeze is due: autovacuum forces one at 100 %, and a
/// scheduled run shortly before that avoids an anti-wraparound vacuum at a bad moment.
pub const FREEZE_DUE_SHARE: f64 = 0.9;
/// Past this share of the way to wraparound the freezing has fallen behind, whatever the settings.
pub const WRAPAROUND_RISK_PCT: f64 = 50.0;

/// The server's autovacuum settings (postgresql.conf / ALTER SYSTEM).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    pub autovacuum: bool,
    pub vacuum_threshold: f64,
    pub vacuum_scale_factor: f64,
    pub analyze_threshold: f64,
    pub analyze_scale_factor: f64,
    /// -1 disables insert-driven vacuums.
    pub insert_threshold: f64,
    pub insert_scale_factor: f64,
    pub freeze_max_age: f64,
    pub multixact_freeze_max_age: f64,
}

impl Default for ServerSettings {
    /// PostgreSQL 15's defaults.
    fn default() -> Self {
        ServerSettings {
            autovacuum: true,
            vacuum_threshold: 50.0,
            vacuum_scale_factor: 0.2,
            analyze_threshold: 50.0,
            analyze_scale_factor: 0.1,
            insert_threshold: 1000.0,
            insert_scale_factor: 0.2,
            freeze_max_age: 200_000_000.0,
            multixact_freeze_max_age: 400_000_000.0,
        }
    }
}

/// A table's own autovacuum reloptions; None where the table does not set one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableOptions {
    pub enabled: Option<bool>,
    pub vacuum_threshold: Option<f64>,
    pub vacuum_scale_factor: Option<f64>,
    pub analyze_threshold: Option<f64>,
    pub analyze_scale_factor: Option<f64>,
    pub insert_threshold: Option<f64>,
    pub insert_scale_factor: Option<f64>,
    pub freeze_max_age: Option<f64>,
    pub multixact_freeze_max_age: Option<f64>,
}

/// One user table as pg_stat_user_tables and pg_class show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableFacts {
    pub schema: String,
    pub table: String,
    /// `quote_ident(schema).quote_ident(table)`, as commands name it.
    pub qualified: String,
    /// pg_class.reltuples (-1: never vacuumed or analyzed).
    pub reltuples: f64,
    pub n_live_tup: i64,
    pub n_dead_tup: i64,
    pub n_mod_since_analyze: i64,
    pub n_ins_since_vacuum: i64,
    pub ever_analyzed: bool,
    pub xid_age: i64,
    pub mxid_age: i64,
    pub options: TableOptions,
}

/// The limits autovacuum applies to one table.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub autovacuum_enabled: bool,
    /// autovacuum_enabled = false on the table (rather than autovacuum = off on the server).
    pub disabled_by_table: bool,
    /// Vacuum when n_dead_tup exceeds this.
    pub vacuum: f64,
    /// Analyze when n_mod_since_analyze exceeds this.
    pub analyze: f64,
    /// The fixed part of `analyze` (autovacuum_analyze_threshold).
    pub analyze_base: f64,
    /// Vacuum when n_ins_since_vacuum exceeds this; None when insert vacuums are off.
    pub insert: Option<f64>,
    pub freeze_max_age: f64,
    pub multixact_freeze_max_age: f64,
}

/// Autovacuum's arithmetic: `base + scale_factor * reltuples`, each from the table's reloption
/// when set, else the server's; a table's freeze ages can only lower the server's.
pub fn thresholds(server: &ServerSettings, facts: &TableFacts) -> Thresholds {
    let opts = &facts.options;
    // Autovacuum treats "never counted" (-1) as an empty table.
    let tuples = facts.reltuples.max(0.0);
    let limit = |base: Option<f64>, server_base: f64, scale: Option<f64>, server_scale: f64| {
        base.unwrap_or(server_base) + scale.unwrap_or(server_scale) * tuples
    };
    let insert_base = opts.insert_threshold.unwrap_or(server.insert_threshold);
    let table_enabled = opts.enabled.unwrap_or(true);
    Thresholds {
        autovacuum_enabled: table_enabled && server.autovacuum,
        disabled_by_table: !table_enabled,
        vacuum: limit(
            opts.vacuum_threshold,
            server.vacuum_threshold,
            opts.vacuum_scale_factor,
            server.vacuum_scale_factor,
        ),
        analyze: limit(
            opts.analyze_threshold,
            server.analyze_threshold,
            opts.analyze_scale_factor,
            server.analyze_scale_factor,
        ),
        analyze_base: opts.analyze_threshold.unwrap_or(server.analyze_threshold),
        insert: (insert_base >= 0.0).then(|| {
            limit(Some(insert_base), 0.0, opts.insert_scale_factor, server.insert_scale_factor)
        }),
        freeze_max_age: opts
            .freeze_max_age
            .map_or(server.freeze_max_age, |t| t.min(server.freeze_max_age)),
        multixact_freeze_max_age: opts
            .multixact_freeze_max_age
            .map_or(server.multixact_freeze_max_age, |t| t.min(server.multixact_freeze_max_age)),
    }
}

/// Dead tuples as a share of all tuples (0 for an empty table).
pub fn dead_ratio(live: i64, dead: i64) -> f64 {
    let total = live.max(0) + dead.max(0);
    if total == 0 {
        0.0
    } else {
        dead.max(0) as f64 / total as f64
    }
}

/// Percent of the way to wraparound of an xid (or multixact) age.
pub fn wraparound_pct(age: i64) -> f64 {
    100.0 * age.max(0) as f64 / WRAPAROUND_IDS
}

/// From worst to fine; the first that applies is a table's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    WraparoundRisk,
    FreezeDue,
    VacuumOverdue,
    AnalyzeOverdue,
    AutovacuumDisabled,
    Ok,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::WraparoundRisk => "wraparound risk",
            Status::FreezeDue => "freeze due",
            Status::VacuumOverdue => "vacuum overdue",
            Status::AnalyzeOverdue => "analyze overdue",
            Status::AutovacuumDisabled => "autovacuum disabled",
            Status::Ok => "ok",
        }
    }
}

/// Wraparound status of an xid and multixact age against the freeze limits (tables and databases).
pub fn wraparound_status(
    xid_age: i64,
    mxid_age: i64,
    freeze_max_age: f64,
    multixact_freeze_max_age: f64,
) -> Option<Status> {
    if wraparound_pct(xid_age).max(wraparound_pct(mxid_age)) >= WRAPAROUND_RISK_PCT {
        Some(Status::WraparoundRisk)
    } else if xid_age as f64 >= FREEZE_DUE_SHARE * freeze_max_age
        || mxid_age as f64 >= FREEZE_DUE_SHARE * multixact_freeze_max_age
    {
        Some(Status::FreezeDue)
    } else {
        None
    }
}

/// Whether the table needs a vacuum by autovacuum's own thresholds (dead or inserted tuples).
pub fn vacuum_overdue(facts: &TableFacts, limits: &Thresholds) -> bool {
    facts.n_dead_tup as f64 > limits.vacuum
        || limits.insert.is_some_and(|t| facts.n_ins_since_vacuum as f64 > t)
}

/// Whether the planner's statistics are stale: modifications past autovacuum's analyze
/// threshold, or rows that were never analyzed at all.
pub fn analyze_overdue(facts: &TableFacts, limits: &Thresholds) -> bool {
    facts.n_mod_since_analyze as f64 > limits.analyze
        || (!facts.ever_analyzed && facts.n_live_tup > 0)
}

/// One table's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub limits: Thresholds,
    pub dead_ratio: f64,
    pub wraparound_pct: f64,
    pub status: Status,
    /// The command that clears the status (None when ok).
    pub action: Option<String>,
}

pub fn freeze_command(qualified: &str) -> String {
    format!("VACUUM (FREEZE, ANALYZE) {qualified}")
}

pub fn vacuum_command(qualified: &str) -> String {
    format!("VACUUM (ANALYZE) {qualified}")
}

pub fn analyze_command(qualified: &str) -> String {
    format!("ANALYZE {qualified}")
}

pub fn assess(server: &ServerSettings, facts: &TableFacts) -> Assessment {
    let limits = thresholds(server, facts);
    let status = wraparound_status(
        facts.xid_age,
        facts.mxid_age,
        limits.freeze_max_age,
        limits.multixact_freeze_max_age,
    )
    .unwrap_or(if vacuum_overdue(facts, &limits) {
        Status::VacuumOverdue
    } else if analyze_overdue(facts, &limits) {
        Status::AnalyzeOverdue
    } else if !limits.autovacuum_enabled {
        Status::AutovacuumDisabled
    } else {
        Status::Ok
    });
    let q = &facts.qualified;
    let action = match status {
        Status::WraparoundRisk | Status::FreezeDue => Some(freeze_command(q)),
        Status::VacuumOverdue => Some(vacuum_command(q)),
        Status::AnalyzeOverdue => Some(analyze_command(q)),
        Status::AutovacuumDisabled if limits.disabled_by_table => {
            Some(format!("ALTER TABLE {q} RESET (autovacuum_enabled)"))
        }
        Status::AutovacuumDisabled => {
            Some("ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf()".into())
        }
        Status::Ok => None,
    };
    Assessment {
        dead_ratio: dead_ratio(facts.n_live_tup, facts.n_dead_tup),
        wraparound_pct: wraparound_pct(facts.xid_age),
        limits,
        status,
        action,
    }
}

/// Why a table has its status, with the numbers autovacuum compares: "dead tuples 12000 >
/// 10050", "inserts 200000 > 100050" (thresholds floored, as the view shows them).
pub fn reason(facts: &TableFacts, a: &Assessment) -> Option<String> {
    let limits = &a.limits;
    let over = |what: &str, count: i64, limit: f64| format!("{what} {count} > {}", limit.floor());
    let reason = match a.status {
        Status::WraparoundRisk => format!(
            "{:.1} % of the way to wraparound (xid age {}, multixact age {}): at least {WRAPAROUND_RISK_PCT} % is a risk",
            wraparound_pct(facts.xid_age).max(wraparound_pct(facts.mxid_age)),
            facts.xid_age,
            facts.mxid_age
        ),
        Status::FreezeDue => {
            if facts.xid_age as f64 >= FREEZE_DUE_SHARE * limits.freeze_max_age {
                format!("xid age {} >= {} (90 % of freeze_max_age {})", facts.xid_age, (FREEZE_DUE_SHARE * limits.freeze_max_age).floor(), limits.freeze_max_age)
            } else {
                format!(
                    "multixact age {} >= {} (90 % of multixact_freeze_max_age {})",
                    facts.mxid_age,
                    (FREEZE_DUE_SHARE * limits.multixact_freeze_max_age).floor(),
                    limits.multixact_freeze_max_age
                )
            }
        }
        Status::VacuumOverdue => {
            let mut crossed = Vec::new();
            if facts.n_dead_tup as f64 > limits.vacuum {
                crossed.push(over("dead tuples", facts.n_dead_tup, limits.vacuum));
            }
            if let Some(insert) = limits.insert.filter(|t| facts.n_ins_since_vacuum as f64 > *t) {
                crossed.push(over("inserts", facts.n_ins_since_vacuum, insert));
            }
            crossed.join("; ")
        }
        Status::AnalyzeOverdue if facts.n_mod_since_analyze as f64 > limits.analyze => {
            over("changes since analyze", facts.n_mod_since_analyze, limits.analyze)
        }
        Status::AnalyzeOverdue => format!("never analyzed ({} live rows)", facts.n_live_tup),
        Status::AutovacuumDisabled if limits.disabled_by_table => "autovacuum_enabled = off on the table".to_string(),
        Status::AutovacuumDisabled => "autovacuum = off on the server".to_string(),
        Status::Ok => return None,
    };
    Some(reason)
}

/// One database's distance to wraparound (pg_database.datfrozenxid / datminmxid).
pub fn database_status(xid_age: i64, mxid_age: i64, server: &ServerSettings) -> Status {
    wraparound_status(xid_age, mxid_age, server.freeze_max_age, server.multixact_freeze_max_age)
        .unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(reltuples: f64, live: i64, dead: i64) -> TableFacts {
        TableFacts {
            schema: "public".into(),
            table: "orders".into(),
            qualified: "public.orders".into(),
            reltuples,
            n_live_tup: live,
            n_dead_tup: dead,
            ever_analyzed: true,
            xid_age: 1000,
            mxid_age: 1,
            ..TableFacts::default()
        }
    }

    #[test]
    fn server_thresholds_scale_with_the_table() {
        let limits = thresholds(&ServerSettings::default(), &table(10_000.0, 10_000, 0));
        assert_eq!(limits.vacuum, 50.0 + 0.2 * 10_000.0);
        assert_eq!(limits.analyze, 50.0 + 0.1 * 10_000.0);
        assert_eq!(limits.insert, Some(1000.0 + 0.2 * 10_000.0));
        assert_eq!(limits.freeze_max_age, 200_000_000.0);
        assert!(limits.autovacuum_enabled);
    }

    #[test]
    fn never_counted_tables_count_as_empty() {
        let limits = thresholds(&ServerSettings::default(), &table(-1.0, 0, 0));
        assert_eq!(limits.vacuum, 50.0);
        assert_eq!(limits.analyze, 50.0);
    }

    #[test]
    fn reloptions_win_over_the_server_and_freeze_ages_only_go_down() {
        let mut facts = table(1000.0, 1000, 0);
        facts.options = TableOptions {
            vacuum_threshold: Some(5.0),
            vacuum_scale_factor: Some(0.0),
            analyze_scale_factor: Some(0.5),
            insert_threshold: Some(-1.0),
            freeze_max_age: Some(100_000_000.0),
            multixact_freeze_max_age: Some(900_000_000.0),
            ..TableOptions::default()
        };
        let limits = thresholds(&ServerSettings::default(), &facts);
        assert_eq!(limits.vacuum, 5.0);
        assert_eq!(limits.analyze, 50.0 + 0.5 * 1000.0);
        assert_eq!(limits.insert, None, "-1 turns insert vacuums off");
        assert_eq!(limits.freeze_max_age, 100_000_000.0);
        assert_eq!(
            limits.multixact_freeze_max_age, 400_000_000.0,
            "a table cannot raise the server's limit"
        );
    }

    #[test]
    fn server_insert_threshold_off_unless_the_table_turns_it_on() {
        let server = ServerSettings { insert_threshold: -1.0, ..ServerSettings::default() };
        assert_eq!(thresholds(&server, &table(100.0, 100, 0)).insert, None);
        let mut facts = table(100.0, 100, 0);
        facts.options.insert_threshold = Some(10.0);
        assert_eq!(thresholds(&server, &facts).insert, Some(10.0 + 0.2 * 100.0));
    }

    #[test]
    fn dead_tuples_past_the_threshold_need_a_vacuum() {
        let server = ServerSettings::default();
        let quiet = assess(&server, &table(10_000.0, 10_000, 2050));
        assert_eq!(quiet.status, Status::Ok, "2050 is not more than 50 + 0.2 * 10000");
        assert_eq!(quiet.action, None);
        let due = assess(&server, &table(10_000.0, 10_000, 2051));
        assert_eq!(due.status, Status::VacuumOverdue);
        assert_eq!(due.action.as_deref(), Some("VACUUM (ANALYZE) public.orders"));
        assert!((due.dead_ratio - 2051.0 / 12_051.0).abs() < 1e-12);
    }

    #[test]
    fn inserts_past_the_insert_threshold_need_a_vacuum() {
        let mut facts = table(10_000.0, 10_000, 0);
        facts.n_ins_since_vacuum = 3001;
        assert_eq!(assess(&ServerSettings::default(), &facts).status, Status::VacuumOverdue);
    }

    #[test]
    fn stale_or_missing_statistics_need_an_analyze() {
        let server = ServerSettings::default();
        let mut facts = table(10_000.0, 10_000, 0);
        facts.n_mod_since_analyze = 1051;
        let stale = assess(&server, &facts);
        assert_eq!(stale.status, Status::AnalyzeOverdue);
        assert_eq!(stale.action.as_deref(), Some("ANALYZE public.orders"));
        let mut never = table(-1.0, 10, 0);
        never.ever_analyzed = false;
        assert_eq!(assess(&server, &never).status, Status::AnalyzeOverdue);
        never.n_live_tup = 0;
        assert_eq!(
            assess(&server, &never).status,
            Status::Ok,
            "an empty table has nothing to analyze"
        );
    }

    #[test]
    fn disabled_autovacuum_is_reported_with_the_switch_that_enables_it() {
        let mut facts = table(100.0, 100, 0);
        facts.options.enabled = Some(false);
        let off = assess(&ServerSettings::default(), &facts);
        assert_eq!(off.status, Status::AutovacuumDisabled);
        assert_eq!(
            off.action.as_deref(),
            Some("ALTER TABLE public.orders RESET (autovacuum_enabled)")
        );
        let server_off = ServerSettings { autovacuum: false, ..ServerSettings::default() };
        let off = assess(&server_off, &table(100.0, 100, 0));
        assert_eq!(off.status, Status::AutovacuumDisabled);
        assert!(off.action.unwrap().starts_with("ALTER SYSTEM SET autovacuum = on"));
        // Work that is due outranks the warning.
        facts.n_dead_tup = 1000;
        assert_eq!(assess(&ServerSettings::default(), &facts).status, Status::VacuumOverdue);
    }

    #[test]
    fn old_xids_call_for_a_freeze_before_anything_else() {
        let server = ServerSettings::default();
        let mut facts = table(10_000.0, 10_000, 5000);
        facts.xid_age = 179_999_999;
        assert_eq!(assess(&server, &facts).status, Status::VacuumOverdue);
        facts.xid_age = 180_000_000;
        let due = assess(&server, &facts);
        assert_eq!(due.status, Status::FreezeDue);
        assert_eq!(due.action.as_deref(), Some("VACUUM (FREEZE, ANALYZE) public.orders"));
        facts.xid_age = 1_100_000_000;
        let risk = assess(&server, &facts);
        assert_eq!(risk.status, Status::WraparoundRisk);
        assert!((risk.wraparound_pct - 51.22).abs() < 0.01, "{}", risk.wraparound_pct);
        // A table's lower freeze age brings the freeze forward; multixacts count too.
        let mut low = table(10.0, 10, 0);
        low.options.freeze_max_age = Some(1_000_000.0);
        low.xid_age = 950_000;
        assert_eq!(assess(&server, &low).status, Status::FreezeDue);
        let mut multi = table(10.0, 10, 0);
        multi.mxid_age = 360_000_000;
        assert_eq!(assess(&server, &multi).status, Status::FreezeDue);
    }

    #[test]
    fn ratios_and_percentages_at_the_edges() {
        assert_eq!(dead_ratio(0, 0), 0.0);
        assert_eq!(dead_ratio(0, 10), 1.0);
        assert_eq!(wraparound_pct(1 << 30), 50.0);
        assert_eq!(wraparound_pct(-5), 0.0);
        let server = ServerSettings::default();
        assert_eq!(database_status(100, 100, &server), Status::Ok);
        assert_eq!(database_status(190_000_000, 0, &server), Status::FreezeDue);
        assert_eq!(database_status(0, 1_500_000_000, &server), Status::WraparoundRisk);
    }

    #[test]
    fn the_reason_names_the_threshold_crossed() {
        let server = ServerSettings::default();
        // 50 + 0.2 * 50000 = 10050 dead tuples; 1000 + 0.2 * 50000 = 11000 inserts.
        let mut facts = table(50_000.0, 50_000, 12_000);
        let a = assess(&server, &facts);
        assert_eq!(reason(&facts, &a).as_deref(), Some("dead tuples 12000 > 10050"));
        facts.n_dead_tup = 0;
        facts.n_ins_since_vacuum = 200_000;
        let a = assess(&server, &facts);
        assert_eq!(a.status, Status::VacuumOverdue);
        assert_eq!(reason(&facts, &a).as_deref(), Some("inserts 200000 > 11000"));
        facts.n_dead_tup = 10_051;
        let a = assess(&server, &facts);
        assert_eq!(
            reason(&facts, &a).as_deref(),
            Some("dead tuples 10051 > 10050; inserts 200000 > 11000")
        );
        // A table's own reloptions set the limit named.
        let mut own = table(1000.0, 1000, 0);
        own.options.insert_threshold = Some(10.0);
        own.options.insert_scale_factor = Some(0.0);
        own.n_ins_since_vacuum = 11;
        let a = assess(&server, &own);
        assert_eq!(reason(&own, &a).as_deref(), Some("inserts 11 > 10"));
        let mut stale = table(10_000.0, 10_000, 0);
        stale.n_mod_since_analyze = 1051;
        let a = assess(&server, &stale);
        assert_eq!(reason(&stale, &a).as_deref(), Some("changes since analyze 1051 > 1050"));
        let quiet = table(10_000.0, 10_000, 0);
        assert_eq!(reason(&quiet, &assess(&server, &quiet)), None);
    }
}
