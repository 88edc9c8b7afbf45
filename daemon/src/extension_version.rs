//! Which version of the pitstop extension this binary works with: its own release's
//! (`pg_extension.extversion` equal to the crate version), and what the DBA should run when a
//! database has another one. The CLI refuses to run against another version; the daemon says
//! so in its PostgreSQL status line.

use anyhow::{bail, Result};
use tokio_postgres::Client;

/// The extension version this build needs: the one of the same release.
pub const NEEDED: &str = env!("CARGO_PKG_VERSION");

const INSTALLED: &str = "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pitstop'";

/// Fails with what to run when the database's pitstop extension is not this release's. A
/// database without the extension passes: each command says itself what it misses then.
pub async fn require(client: &Client) -> Result<()> {
    let installed: Option<String> = client.query_opt(INSTALLED, &[]).await?.map(|row| row.get(0));
    match installed.and_then(|v| mismatch(NEEDED, &v)) {
        Some(problem) => bail!(problem),
        None => Ok(()),
    }
}

/// The daemon's status line for a connection to a database with extension version `installed`.
pub fn connected(installed: &str) -> String {
    match mismatch(NEEDED, installed) {
        Some(problem) => format!("connected; extension pitstop {installed} ({problem})"),
        None => format!("connected; extension pitstop {installed}"),
    }
}

/// Why extension version `installed` does not suit binary version `needed`, and what to run.
pub fn mismatch(needed: &str, installed: &str) -> Option<String> {
    if installed == needed {
        return None;
    }
    let head =
        format!("pitstop {needed} needs extension version {needed}, this database has {installed}");
    Some(match (numbers(installed), numbers(needed)) {
        (Some(have), Some(want)) if have < want => {
            format!("{head}: run ALTER EXTENSION pitstop UPDATE")
        }
        (Some(_), Some(_)) => format!("{head}, which is newer: use pitstop {installed}"),
        _ => format!("{head}: run ALTER EXTENSION pitstop UPDATE TO '{needed}'"),
    })
}

/// "0.10.2" as [0, 10, 2], for comparing releases; None for anything else.
pub fn numbers(version: &str) -> Option<Vec<u64>> {
    version.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_extension_is_told_to_update() {
        assert_eq!(
            mismatch("0.2.0", "0.1.0").as_deref(),
            Some("pitstop 0.2.0 needs extension version 0.2.0, this database has 0.1.0: run ALTER EXTENSION pitstop UPDATE")
        );
        // Compared as numbers, not as text ("0.10.0" > "0.9.0").
        assert!(mismatch("0.10.0", "0.9.0")
            .unwrap()
            .ends_with("run ALTER EXTENSION pitstop UPDATE"));
    }

    #[test]
    fn the_same_release_passes_and_a_newer_or_unknown_one_does_not() {
        assert_eq!(mismatch("0.2.0", "0.2.0"), None);
        assert_eq!(mismatch(NEEDED, NEEDED), None);
        assert!(mismatch("0.9.0", "0.10.0")
            .unwrap()
            .ends_with("0.10.0, which is newer: use pitstop 0.10.0"));
        assert!(mismatch("0.2.0", "0.2.0-dev")
            .unwrap()
            .ends_with("run ALTER EXTENSION pitstop UPDATE TO '0.2.0'"));
    }

    #[test]
    fn the_daemon_status_line_names_the_problem() {
        assert_eq!(connected(NEEDED), format!("connected; extension pitstop {NEEDED}"));
        let old = connected("0.0.1");
        assert!(
            old.starts_with("connected; extension pitstop 0.0.1 (pitstop ")
                && old.ends_with(": run ALTER EXTENSION pitstop UPDATE)"),
            "{old}"
        );
    }
}
