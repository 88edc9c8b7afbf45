//! `pitstop top` in a real terminal: tmux runs it against a cluster where a `pg_sleep` runs;
//! the screen shows that statement with its wait and the host line; `q` quits with status 0
//! and leaves the terminal as it was (main screen, `stty` sane). Without a terminal it prints
//! one snapshot (text or JSON). tmux comes from scripts/setup.sh; without it the terminal test
//! says so and checks nothing.

use pitstop_tests::{pitstop, pitstop_bin, poll_until, PgCluster};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// A session of our own tmux server (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    fn start(shell_command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("pitstop-top-{}-{}", std::process::id(), pitstop_tests::free_port()),
        };
        let out =
            tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "160", "-y", "45", shell_command]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").args(["-L", &self.socket]).args(args).output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let out = self.cmd(&[&["send-keys", "-t", "t"], keys].concat());
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn pane(&self, format: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["display-message", "-p", "-t", "t", format]).stdout)
            .trim()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn cluster_with_a_sleeper() -> (PgCluster, std::thread::JoinHandle<()>) {
    let (cluster, _c) = PgCluster::with_extension("CREATE EXTENSION pg_stat_statements");
    let dsn = cluster.dsn();
    let sleeper = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
        let _ = c.batch_execute("SELECT pg_sleep(40) AS top_sleeper");
    });
    let mut watch = cluster.connect();
    let started = poll_until(Duration::from_secs(30), || {
        watch.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE '%AS top_sleeper' AND state = 'active'", &[]).is_ok_and(|r| !r.is_empty())
    });
    assert!(started, "the sleeping statement did not start");
    (cluster, sleeper)
}

fn cancel_sleeper(cluster: &PgCluster, sleeper: std::thread::JoinHandle<()>) {
    cluster
        .connect()
        .batch_execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS top_sleeper' AND pid <> pg_backend_pid()")
        .unwrap();
    sleeper.join().unwrap();
}

#[test]
fn top_in_tmux_shows_the_running_statement_and_q_restores_the_terminal() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (scripts/setup.sh installs it); pitstop top was not tested in a terminal");
        return;
    }
    let (cluster, sleeper) = cluster_with_a_sleeper();
    let dir = std::env::temp_dir().join(format!(
        "pitstop-top-{}-{}",
        std::process::id(),
        pitstop_tests::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let stty = dir.join("stty.txt");
    // A shell of our own, with no rc files and a prompt of its own.
    let tmux = Tmux::start(
        "env -i PATH=/usr/bin:/bin TERM=xterm-256color PS1='top-shell> ' bash --norc --noprofile",
    );
    assert!(
        poll_until(Duration::from_secs(20), || tmux.screen().contains("top-shell>")),
        "no shell prompt:\n{}",
        tmux.screen()
    );
    let line = format!(
        "{} --dsn '{}' top; echo \"top exited $?\"",
        pitstop_bin().display(),
        cluster.dsn()
    );
    tmux.keys(&[&line, "Enter"]);

    let shown = poll_until(Duration::from_secs(60), || {
        let s = tmux.screen();
        s.contains("top_sleeper")
            && s.contains("Timeout:PgSleep")
            && s.contains("host: cpu")
            && s.contains("top statements by time")
    });
    assert!(
        shown,
        "pitstop top did not show the sleeping statement, its wait and the host:\n{}",
        tmux.screen()
    );
    assert_eq!(tmux.pane("#{alternate_on}"), "1", "pitstop top is not on the alternate screen");

    tmux.keys(&["q"]);
    let exited = poll_until(Duration::from_secs(30), || tmux.screen().contains("top exited"));
    let screen = tmux.screen();
    assert!(exited, "pitstop top did not quit on q:\n{screen}");
    assert!(screen.contains("top exited 0"), "exit status:\n{screen}");
    assert!(
        !screen.contains("top_sleeper"),
        "the main screen shows top's frame, not the shell:\n{screen}"
    );
    assert_eq!(tmux.pane("#{alternate_on}"), "0", "the alternate screen was left on");
    assert_eq!(tmux.pane("#{cursor_flag}"), "1", "the cursor was left hidden");
    // The terminal is back in cooked mode with echo.
    tmux.keys(&[&format!("stty -a > {}", stty.display()), "Enter"]);
    assert!(
        poll_until(Duration::from_secs(20), || std::fs::read_to_string(&stty)
            .is_ok_and(|s| s.contains("icanon"))),
        "stty did not run"
    );
    let modes = std::fs::read_to_string(&stty).unwrap();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(words.contains(&mode), "stty: {mode} is off after pitstop top:\n{modes}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    cancel_sleeper(&cluster, sleeper);
}

#[test]
fn without_a_terminal_top_prints_one_snapshot() {
    let (cluster, sleeper) = cluster_with_a_sleeper();
    let dsn = cluster.dsn();
    let (code, out, err) = pitstop(&["--dsn", &dsn, "top", "--interval", "300ms", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let frame: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON: {e}: {out}"));
    let active = frame["active"]["rows"].as_array().unwrap_or_else(|| panic!("{frame:#}"));
    let sleeping = active
        .iter()
        .find(|a| a["query"].as_str().unwrap_or("").contains("top_sleeper"))
        .unwrap_or_else(|| panic!("{frame:#}"));
    assert_eq!(sleeping["wait"], "Timeout:PgSleep", "{frame:#}");
    assert!(
        active.iter().all(|a| !a["query"].as_str().unwrap_or("").contains("pg_stat_activity")),
        "top lists its own session: {frame:#}"
    );
    assert!(frame["top_statements"]["rows"].is_array(), "{frame:#}");
    assert!(frame["host"]["memory_total_bytes"].as_f64().unwrap_or(0.0) > 0.0, "{frame:#}");

    let (code, out, err) = pitstop(&["--dsn", &dsn, "top", "--interval", "300ms"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for text in [
        "pitstop top",
        "host: cpu",
        "active statements",
        "top_sleeper",
        "top statements by time in the last",
    ] {
        assert!(out.contains(text), "{text} missing:\n{out}");
    }
    assert!(!out.contains("\x1b["), "escape sequences without a terminal:\n{out:?}");
    cancel_sleeper(&cluster, sleeper);
}
