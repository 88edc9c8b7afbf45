//! The workload's statements as the advisor reports them: which recorded texts are utility
//! commands (never served by an index), a statement's one-line label, and why a statement
//! no suggested index helps was left unhelped.

use crate::advisor::select::Limits;
use crate::advisor::usage::TableUsage;

/// Whether the statement's first word (after whitespace and comments) starts a command that
/// is never a query: transaction control, settings, maintenance, DDL.
pub fn starts_with_utility_command(sql: &str) -> bool {
    const UTILITY: &[&str] = &[
        "abort",
        "alter",
        "analyze",
        "begin",
        "call",
        "checkpoint",
        "close",
        "cluster",
        "comment",
        "commit",
        "create",
        "deallocate",
        "discard",
        "do",
        "drop",
        "end",
        "grant",
        "listen",
        "load",
        "lock",
        "notify",
        "prepare",
        "refresh",
        "reindex",
        "release",
        "reset",
        "revoke",
        "rollback",
        "savepoint",
        "set",
        "show",
        "start",
        "truncate",
        "unlisten",
        "vacuum",
    ];
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, next)| next);
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    UTILITY.contains(&word.to_ascii_lowercase().as_str())
}

/// The statement on one line, cut after 200 characters. Reads no further than that: the text
/// may be any size.
pub fn label(sql: &str) -> String {
    const SHOWN: usize = 200;
    // The first SHOWN + 1 characters of the text on one line: enough to know it is longer.
    let mut one_line = String::new();
    let mut count = 0;
    'words: for word in sql.split_whitespace() {
        if count > 0 {
            if count > SHOWN {
                break;
            }
            one_line.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count > SHOWN {
                break 'words;
            }
            one_line.push(c);
            count += 1;
        }
    }
    match one_line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Why no suggested index helps a planned statement that reads the tables in `usage`.
/// `offered`: some candidate could serve it (before weighing was narrowed to the statements
/// whose plans used its leading key); `maintained`: one of those candidates costs index
/// maintenance under the workload's writes; `limited`: the budget or max_indexes cut the list.
pub fn unhelped_reason(
    usage: &[TableUsage],
    offered: bool,
    maintained: bool,
    limits: &Limits,
    limited: bool,
) -> String {
    if usage.is_empty() {
        return "reads no table".to_string();
    }
    if let Some(broad) = usage
        .iter()
        .filter(|u| u.kept_fraction() >= 0.3)
        .max_by(|a, b| a.kept_fraction().total_cmp(&b.kept_fraction()))
    {
        return format!(
            "reads most of {} ({:.0} % of its rows): a sequential scan is cheaper than any index",
            broad.table,
            broad.kept_fraction() * 100.0
        );
    }
    if !offered {
        return "no filter, join key or ordering an index could serve (or existing indexes already cover them)".to_string();
    }
    let mut reason = format!(
        "no candidate index lowers its estimated cost by {:.0} % or more (existing indexes may already serve it)",
        limits.min_improvement * 100.0
    );
    if maintained {
        reason.push_str("; or what it would save does not pay for maintaining the index under the workload's writes");
    }
    if limited {
        reason.push_str("; the budget or max_indexes limit may have stopped an index that would");
    }
    if limits.min_workload_gain > 0.0 {
        reason.push_str(&format!(
            "; or such an index would lower the whole workload's cost by less than {} % (min_workload_gain)",
            limits.min_workload_gain * 100.0
        ));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_utility_commands_are_known_by_their_first_word() {
        for sql in [
            "SET work_mem = $1",
            "  set local statement_timeout TO $1",
            "/* app */ RESET ALL",
            "-- x\nSHOW $1",
        ] {
            assert!(starts_with_utility_command(sql), "{sql}");
        }
        for sql in [
            "SELECT $1",
            "WITH s AS (SELECT 1) SELECT * FROM s",
            "settle",
            "/* SET */ SELECT 1",
            "UPDATE t SET a = $1",
            "",
        ] {
            assert!(!starts_with_utility_command(sql), "{sql}");
        }
    }

    #[test]
    fn long_queries_are_cut_on_one_line() {
        let label = label(&format!("SELECT\n  {}", "é".repeat(300)));
        assert!(label.starts_with("SELECT é") && label.ends_with('…'));
        assert_eq!(label.chars().count(), 201);
        assert_eq!(super::label("SELECT 1\n  FROM t"), "SELECT 1 FROM t");
    }

    /// The label reads only the start of the text, and says what joining every word of the
    /// whole text and cutting it would say, at the cut's edges too.
    #[test]
    fn the_label_is_the_cut_of_the_whole_text_on_one_line() {
        let whole = |sql: &str| {
            let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            match one_line.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &one_line[..cut]),
                None => one_line,
            }
        };
        let mut texts = vec![String::new(), "  \n ".to_string(), "x".repeat(200), "x".repeat(201)];
        for n in 195..205 {
            texts.push(format!("{} {}", "a".repeat(n), "b c"));
            texts.push(format!("{}\t\n  é {}", "a".repeat(n), "ü".repeat(n)));
        }
        for text in &texts {
            assert_eq!(label(text), whole(text), "{text:?}");
        }
        // 64 MiB of words: the label is made from its first words alone.
        let huge = "word ".repeat(1 << 24);
        assert_eq!(label(&huge), whole(&huge[..2_000]));
    }

    fn table(rows_kept: f64) -> TableUsage {
        TableUsage {
            relid: 1,
            table: "public.t".into(),
            table_rows: 1000.0,
            rows_kept,
            filters: Vec::new(),
            join_columns: Vec::new(),
            join_expressions: Vec::new(),
            order_by: Vec::new(),
            needed_columns: None,
            column_names: Default::default(),
            partitioned: false,
            parameterized: Vec::new(),
        }
    }

    #[test]
    fn the_reason_names_what_stopped_the_index() {
        let limits = Limits {
            budget_bytes: None,
            max_indexes: None,
            min_improvement: 0.05,
            min_workload_gain: 0.0,
        };
        assert_eq!(unhelped_reason(&[], true, true, &limits, true), "reads no table");
        let broad = unhelped_reason(&[table(900.0)], true, false, &limits, false);
        assert!(broad.starts_with("reads most of public.t (90 % of its rows)"), "{broad}");
        let narrow = [table(10.0)];
        assert!(unhelped_reason(&narrow, false, true, &limits, true).starts_with("no filter"));
        let plain = unhelped_reason(&narrow, true, false, &limits, false);
        assert_eq!(
            plain,
            "no candidate index lowers its estimated cost by 5 % or more (existing indexes may already serve it)"
        );
        let gain = Limits { min_workload_gain: 0.01, ..limits };
        let all = unhelped_reason(&narrow, true, true, &gain, true);
        assert!(
            all.starts_with(&plain)
                && all.contains("maintaining the index")
                && all.contains("max_indexes limit")
                && all.ends_with("less than 1 % (min_workload_gain)"),
            "{all}"
        );
    }
}
