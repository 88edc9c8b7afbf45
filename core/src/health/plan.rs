//! `pitstop.maintenance_plan(...)`: the actions scheduled maintenance would take now, built
//! from the vacuum assessment (`vacuum.rs`) and the btree bloat estimate (`table_bloat.rs`)
//! with the caller's thresholds. Pure; the extension's `health::sql` reads the inputs.

use crate::health::btree::reindex_command;
use crate::health::human_bytes;
use crate::health::table_bloat::BloatRow;
use crate::health::vacuum::{self, Assessment, Status, TableFacts};

/// A threshold out of its range (the extension raises it with SQLSTATE 22023).
#[derive(Clone, Debug, PartialEq)]
pub enum BadThreshold {
    OutOfRange { name: &'static str, value: String, expected: &'static str },
    Negative { name: &'static str, value: String },
}

impl std::fmt::Display for BadThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfRange { name, value, expected } => {
                write!(f, "argument \"{name}\" must be {expected} (got {value})")
            }
            Self::Negative { name, value } => {
                write!(f, "argument \"{name}\" must not be negative (got {value})")
            }
        }
    }
}

/// The caller's thresholds (the daemon's maintenance config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub vacuum_dead_ratio: f64,
    pub vacuum_min_dead: i64,
    pub analyze_mod_ratio: f64,
    pub reindex_bloat_pct: f64,
    pub reindex_min_bytes: i64,
}

impl Thresholds {
    pub fn validate(self) -> Result<Self, BadThreshold> {
        let ratio = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(BadThreshold::OutOfRange {
                    name,
                    value: v.to_string(),
                    expected: "between 0 and 1",
                })
            }
        };
        let non_negative = |name: &'static str, v: f64| {
            if v >= 0.0 {
                Ok(())
            } else {
                Err(BadThreshold::Negative { name, value: v.to_string() })
            }
        };
        ratio("vacuum_dead_ratio", self.vacuum_dead_ratio)?;
        non_negative("vacuum_min_dead", self.vacuum_min_dead as f64)?;
        ratio("analyze_mod_ratio", self.analyze_mod_ratio)?;
        if !(0.0..=100.0).contains(&self.reindex_bloat_pct) {
            return Err(BadThreshold::OutOfRange {
                name: "reindex_bloat_pct",
                value: self.reindex_bloat_pct.to_string(),
                expected: "between 0 and 100",
            });
        }
        non_negative("reindex_min_bytes", self.reindex_min_bytes as f64)?;
        Ok(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    VacuumFreeze,
    Vacuum,
    Analyze,
    Reindex,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::VacuumFreeze => "vacuum_freeze",
            Action::Vacuum => "vacuum",
            Action::Analyze => "analyze",
            Action::Reindex => "reindex",
        }
    }

    /// Wraparound first; then dead tuples (they slow every scan), stale statistics (cheap to
    /// fix, bad plans meanwhile), and index rebuilds (costly, run last).
    pub fn priority(self) -> i32 {
        match self {
            Action::VacuumFreeze => 1,
            Action::Vacuum => 2,
            Action::Analyze => 3,
            Action::Reindex => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow {
    pub action: Action,
    pub schema: String,
    pub relation: String,
    pub index_name: Option<String>,
    /// The table the action works on (for a reindex: the index's table), quoted and qualified:
    /// the daemon never runs two actions on one target at once.
    pub target: String,
    pub command: String,
    pub reason: String,
    /// Orders rows within a priority, larger first.
    urgency: f64,
}

/// The vacuum-side action for one table, if any (at most one: a vacuum analyzes too).
fn table_action(facts: &TableFacts, assessed: &Assessment, t: &Thresholds) -> Option<PlanRow> {
    let q = &facts.qualified;
    let row = |action: Action, command: String, reason: String, urgency: f64| PlanRow {
        action,
        schema: facts.schema.clone(),
        relation: facts.table.clone(),
        index_name: None,
        target: q.clone(),
        command,
        reason,
        urgency,
    };
    if matches!(assessed.status, Status::WraparoundRisk | Status::FreezeDue) {
        let share = 100.0 * facts.xid_age as f64 / assessed.limits.freeze_max_age;
        return Some(row(
            Action::VacuumFreeze,
            vacuum::freeze_command(q),
            format!(
                "xid age {} is {:.0}% of its freeze_max_age {} ({:.1}% of the way to wraparound; mxid age {})",
                facts.xid_age, share, assessed.limits.freeze_max_age, assessed.wraparound_pct, facts.mxid_age
            ),
            facts.xid_age.max(facts.mxid_age) as f64,
        ));
    }
    if facts.n_dead_tup >= t.vacuum_min_dead
        && facts.n_dead_tup > 0
        && assessed.dead_ratio >= t.vacuum_dead_ratio
    {
        return Some(row(
            Action::Vacuum,
            vacuum::vacuum_command(q),
            format!(
                "{} dead tuples ({:.1}% of the table; thresholds {} and {:.1}%)",
                facts.n_dead_tup,
                100.0 * assessed.dead_ratio,
                t.vacuum_min_dead,
                100.0 * t.vacuum_dead_ratio
            ),
            facts.n_dead_tup as f64,
        ));
    }
    let tuples = facts.reltuples.max(0.0);
    let modified = facts.n_mod_since_analyze as f64;
    // Below the table's analyze base threshold (autovacuum_analyze_threshold, 50 by default)
    // a handful of changes to a tiny table is noise.
    let stale = modified >= t.analyze_mod_ratio * tuples && modified > assessed.limits.analyze_base;
    let never = !facts.ever_analyzed && facts.n_live_tup > 0;
    if stale || never {
        let reason = if never {
            format!(
                "never analyzed; about {} live rows have no planner statistics",
                facts.n_live_tup
            )
        } else {
            format!(
                "{} rows modified since the last analyze ({:.1}% of {} rows; threshold {:.1}%)",
                facts.n_mod_since_analyze,
                if tuples > 0.0 { 100.0 * modified / tuples } else { 100.0 },
                tuples,
                100.0 * t.analyze_mod_ratio
            )
        };
        return Some(row(
            Action::Analyze,
            vacuum::analyze_command(q),
            reason,
            modified.max(facts.n_live_tup as f64),
        ));
    }
    None
}

/// A REINDEX for an index row of table_bloat past both thresholds.
fn reindex_action(row: &BloatRow, t: &Thresholds) -> Option<PlanRow> {
    let (b, index) = (row.bloat()?, row.index.as_ref()?);
    (b.pct() >= t.reindex_bloat_pct && b.excess() >= t.reindex_min_bytes as f64 && b.excess() > 0.0)
        .then(|| PlanRow {
            action: Action::Reindex,
            schema: row.schema.clone(),
            relation: row.table.clone(),
            index_name: row.index.clone(),
            target: row.qualified_table.clone(),
            command: reindex_command(&row.schema, index),
            reason: format!(
                "about {:.0}% ({}) of its {} is free space; a rebuild would take ~{}",
                b.pct(),
                human_bytes(b.excess()),
                human_bytes(b.bytes),
                human_bytes(b.expected)
            ),
            urgency: b.excess(),
        })
}

/// The plan, ordered by priority and, within one, by urgency (oldest xids, most dead tuples,
/// most modifications, most wasted bytes first).
pub fn plan(
    tables: &[(TableFacts, Assessment)],
    bloat: &[BloatRow],
    t: &Thresholds,
) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> =
        tables.iter().filter_map(|(facts, a)| table_action(facts, a, t)).collect();
    rows.extend(bloat.iter().filter_map(|i| reindex_action(i, t)));
    rows.sort_by(|a, b| {
        a.action
            .priority()
            .cmp(&b.action.priority())
            .then(b.urgency.total_cmp(&a.urgency))
            .then_with(|| a.target.cmp(&b.target))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::table_bloat::Method;
    use crate::health::vacuum::{assess, ServerSettings};

    const DEFAULTS: Thresholds = Thresholds {
        vacuum_dead_ratio: 0.2,
        vacuum_min_dead: 1000,
        analyze_mod_ratio: 0.1,
        reindex_bloat_pct: 30.0,
        reindex_min_bytes: 10_485_760,
    };

    fn table(name: &str, live: i64, dead: i64, modified: i64) -> (TableFacts, Assessment) {
        let facts = TableFacts {
            schema: "public".into(),
            table: name.into(),
            qualified: format!("public.{name}"),
            reltuples: live as f64,
            n_live_tup: live,
            n_dead_tup: dead,
            n_mod_since_analyze: modified,
            ever_analyzed: true,
            xid_age: 1000,
            ..TableFacts::default()
        };
        let a = assess(&ServerSettings::default(), &facts);
        (facts, a)
    }

    fn index(name: &str, bytes: f64, expected: f64) -> BloatRow {
        BloatRow {
            schema: "public".into(),
            table: "big".into(),
            index: Some(name.into()),
            qualified_table: "public.big".into(),
            bytes,
            expected: Some(expected),
            method: Method::Estimate,
        }
    }

    #[test]
    fn thresholds_are_checked() {
        assert!(DEFAULTS.validate().is_ok());
        let bad = [
            Thresholds { vacuum_dead_ratio: 1.5, ..DEFAULTS },
            Thresholds { vacuum_dead_ratio: -0.1, ..DEFAULTS },
            Thresholds { vacuum_min_dead: -1, ..DEFAULTS },
            Thresholds { analyze_mod_ratio: 2.0, ..DEFAULTS },
            Thresholds { reindex_bloat_pct: 101.0, ..DEFAULTS },
            Thresholds { reindex_bloat_pct: f64::NAN, ..DEFAULTS },
            Thresholds { vacuum_dead_ratio: f64::NAN, ..DEFAULTS },
            Thresholds { reindex_min_bytes: -5, ..DEFAULTS },
        ];
        for t in bad {
            assert!(t.validate().is_err(), "{t:?}");
        }
        let err = Thresholds { vacuum_dead_ratio: 1.5, ..DEFAULTS }.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument \"vacuum_dead_ratio\" must be between 0 and 1 (got 1.5)"
        );
    }

    #[test]
    fn dead_tuples_past_both_thresholds_get_a_vacuum_and_no_separate_analyze() {
        let rows = plan(&[table("t", 4000, 6000, 10_000)], &[], &DEFAULTS);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].action, Action::Vacuum);
        assert_eq!(rows[0].command, "VACUUM (ANALYZE) public.t");
        assert_eq!(rows[0].target, "public.t");
        assert!(rows[0].reason.starts_with("6000 dead tuples (60.0%"), "{}", rows[0].reason);
    }

    #[test]
    fn too_few_or_too_diluted_dead_tuples_are_left_alone() {
        assert!(plan(&[table("few", 100, 900, 0)], &[], &DEFAULTS).is_empty());
        assert!(plan(&[table("diluted", 1_000_000, 5000, 0)], &[], &DEFAULTS).is_empty());
    }

    #[test]
    fn stale_and_missing_statistics_get_an_analyze() {
        let rows = plan(&[table("stale", 10_000, 0, 1500)], &[], &DEFAULTS);
        assert_eq!(rows[0].action, Action::Analyze);
        assert_eq!(rows[0].command, "ANALYZE public.stale");
        assert!(plan(&[table("fresh", 10_000, 0, 500)], &[], &DEFAULTS).is_empty());
        // Past the ratio but below autovacuum's base threshold (50): noise.
        assert!(plan(&[table("tiny", 10, 0, 5)], &[], &DEFAULTS).is_empty());
        let (mut facts, _) = table("never", 500, 0, 500);
        facts.ever_analyzed = false;
        facts.reltuples = -1.0;
        let a = assess(&ServerSettings::default(), &facts);
        let rows = plan(&[(facts, a)], &[], &DEFAULTS);
        assert_eq!(rows[0].action, Action::Analyze);
        assert!(rows[0].reason.starts_with("never analyzed"));
    }

    #[test]
    fn bloated_indexes_get_a_reindex_targeting_their_table() {
        let mb = 1_048_576.0;
        let rows = plan(
            &[],
            &[index("big_id_idx", 100.0 * mb, 20.0 * mb), index("small_idx", 5.0 * mb, 1.0 * mb)],
            &DEFAULTS,
        );
        assert_eq!(rows.len(), 1, "5 MB is under reindex_min_bytes: {rows:?}");
        assert_eq!(rows[0].action, Action::Reindex);
        assert_eq!(rows[0].command, "REINDEX INDEX CONCURRENTLY public.big_id_idx");
        assert_eq!(rows[0].target, "public.big");
        assert_eq!(rows[0].index_name.as_deref(), Some("big_id_idx"));
        assert!(
            plan(&[], &[index("tight", 100.0 * mb, 80.0 * mb)], &DEFAULTS).is_empty(),
            "20 % < 30 %"
        );
        // Bloated tables are reported by table_bloat, never rewritten by the plan.
        let heap = BloatRow { index: None, ..index("big", 100.0 * mb, 1.0 * mb) };
        assert!(plan(&[], &[heap], &DEFAULTS).is_empty());
    }

    #[test]
    fn wraparound_comes_first_and_urgency_orders_within_a_priority() {
        let (mut old, _) = table("old", 10, 5000, 0);
        old.xid_age = 190_000_000;
        let old_a = assess(&ServerSettings::default(), &old);
        let mb = 1_048_576.0;
        let rows = plan(
            &[table("some_dead", 4000, 2000, 0), table("many_dead", 4000, 8000, 0), (old, old_a)],
            &[index("big_id_idx", 100.0 * mb, 20.0 * mb)],
            &DEFAULTS,
        );
        let order: Vec<(&str, i32, &str)> = rows
            .iter()
            .map(|r| (r.action.label(), r.action.priority(), r.relation.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("vacuum_freeze", 1, "old"),
                ("vacuum", 2, "many_dead"),
                ("vacuum", 2, "some_dead"),
                ("reindex", 4, "big")
            ]
        );
        assert_eq!(rows[0].command, "VACUUM (FREEZE, ANALYZE) public.old");
    }
}
