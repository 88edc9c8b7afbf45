//! `pitstop man-pages DIR` (hidden): the manual pages, rendered from the clap definitions so
//! they never drift from `--help`. One page per command, as git's: pitstop(1),
//! pitstop-report(1), pitstop-report-slow-queries(1), … `scripts/package.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes every page into `dir` (created if missing) and prints their paths.
pub fn command(cli: clap::Command, dir: &Path) -> ExitCode {
    match write_pages(cli, dir) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the manual pages into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// The pages of `cli` and of every visible subcommand, depth first; their paths.
pub fn write_pages(cli: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // Subpages say which release they document, as the top page does.
    let source = format!("{} {}", cli.get_name(), cli.get_version().unwrap_or_default());
    let mut cli = cli.disable_help_subcommand(true);
    // Sets each subcommand's display name (`pitstop-report`) and bin name (`pitstop report`).
    cli.build();
    let mut pages = Vec::new();
    write(&cli, dir, &source, &mut pages)?;
    Ok(pages)
}

fn write(
    cmd: &clap::Command,
    dir: &Path,
    source: &str,
    pages: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).source(source).manual("pitstop manual");
    pages.push(man.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write(sub, dir, source, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn one_page_per_visible_command_and_none_for_hidden_ones() {
        let dir = std::env::temp_dir().join(format!("pitstop-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pages = write_pages(crate::Cli::command(), &dir).unwrap();
        let names: Vec<String> =
            pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for expected in [
            "pitstop.1",
            "pitstop-run.1",
            "pitstop-check-config.1",
            "pitstop-maintenance.1",
            "pitstop-report.1",
            "pitstop-report-slow-queries.1",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("man-pages") || n.ends_with("-help.1")),
            "{names:?}"
        );
        let top = std::fs::read_to_string(dir.join("pitstop.1")).unwrap();
        assert!(top.starts_with(".ie \\n(.g .ds Aq") || top.contains(".TH pitstop 1"), "{top}");
        assert!(top.contains("pitstop\\-report(1)") && !top.contains("man\\-pages"), "{top}");
        let run = std::fs::read_to_string(dir.join("pitstop-run.1")).unwrap();
        assert!(
            run.contains(&format!("pitstop {}", env!("CARGO_PKG_VERSION")))
                && run.contains("\\-\\-config"),
            "{run}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
