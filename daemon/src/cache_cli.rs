//! `pitstop cache stats|entries|invalidate TABLE|clear`: the result cache from the command
//! line, through the extension's SQL. The two that change the cache ask first on a terminal
//! and are refused without `--yes` when there is none to ask on.

use crate::db::conninfo::Explicit;
use crate::output;
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use tokio_postgres::types::ToSql;

#[derive(Subcommand, Debug, PartialEq)]
pub enum Cache {
    /// Hits, misses, fills, bypasses by reason, entries and bytes since the server started
    /// (pitstop.cache_stats()).
    Stats,
    /// Cached results, most hits first (pitstop.cache_entries: yours, or all with
    /// pg_read_all_stats).
    Entries {
        /// Show at most this many entries.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Make every cached result that read TABLE stale (pitstop.cache_invalidate).
    Invalidate {
        /// The table (schema-qualified if not on the search_path).
        table: String,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Remove every cached result (pitstop.cache_clear).
    Clear {
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Exit status of a change refused for want of a terminal to confirm it on (as `maintenance`).
const REFUSED: u8 = 2;

impl Cache {
    fn query(&self) -> (&'static str, Vec<Box<dyn ToSql + Sync + Send>>) {
        match self {
            Cache::Stats => ("SELECT * FROM pitstop.cache_stats()", vec![]),
            Cache::Entries { limit } => (
                "SELECT query, role, database, relations::text[] AS relations, bytes, hits, age, fresh
                   FROM pitstop.cache_entries LIMIT $1",
                vec![Box::new(*limit)],
            ),
            Cache::Invalidate { table, .. } => {
                ("SELECT pitstop.cache_invalidate($1::text::regclass) AS invalidated", vec![Box::new(table.clone())])
            }
            Cache::Clear { .. } => ("SELECT pitstop.cache_clear() AS removed", vec![]),
        }
    }

    /// For a change: (whether confirmed by flag, the question to ask).
    fn change(&self) -> Option<(bool, String)> {
        match self {
            Cache::Invalidate { table, yes } => {
                Some((*yes, format!("Make every cached result that read {table} stale?")))
            }
            Cache::Clear { yes } => Some((*yes, "Remove every cached result?".into())),
            Cache::Stats | Cache::Entries { .. } => None,
        }
    }

    fn empty_message(&self) -> &'static str {
        match self {
            Cache::Entries { .. } => "No cached results (or none you may see).",
            _ => "",
        }
    }
}

pub fn command(
    connection: &Explicit<'_>,
    cache: &Cache,
    config: Option<&Path>,
    style: output::Style,
) -> ExitCode {
    if let Some((yes, question)) = cache.change() {
        if !yes {
            if !std::io::stdin().is_terminal() {
                eprintln!("refused: {question} needs --yes when stdin is not a terminal");
                return ExitCode::from(REFUSED);
            }
            match output::confirm(&question) {
                Ok(true) => {}
                Ok(false) => {
                    eprintln!("nothing changed");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let timeout = match crate::config::Config::load(config) {
        Ok(cfg) => cfg.report.statement_timeout,
        Err(errors) => {
            crate::config::report_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    crate::report::print_rows(connection, timeout, style, cache.empty_message(), |client, _| {
        Box::pin(async move {
            let (sql, params) = cache.query();
            let rows = crate::report::rows(&client, sql, &params);
            match cache {
                // The table is named as the user's own session would find it.
                Cache::Invalidate { .. } => crate::db::with_users_search_path(&client, rows).await,
                _ => rows.await,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalidate_and_clear_change_the_cache_and_each_reads_a_pitstop_function() {
        let all = [
            Cache::Stats,
            Cache::Entries { limit: 5 },
            Cache::Invalidate { table: "public.t".into(), yes: false },
            Cache::Clear { yes: true },
        ];
        let changes: Vec<bool> = all.iter().map(|c| c.change().is_some()).collect();
        assert_eq!(changes, [false, false, true, true]);
        assert!(all[3].change().unwrap().0);
        for c in &all {
            assert!(c.query().0.contains("pitstop.cache_"), "{c:?}");
        }
    }
}
