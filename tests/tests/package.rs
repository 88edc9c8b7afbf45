//! The Debian packages of `make package` (scripts/package.sh), installed on this machine with
//! dpkg, used and purged: the files land where PostgreSQL and systemd look, the system user and
//! the configuration's rights are made, a cluster runs the packaged library (CREATE EXTENSION
//! at the current version and from 0.1.0 through the upgrade script), the installed `pitstop`
//! runs `doctor` against it as the daemon's user and its manual pages render, and a purge
//! leaves the machine as it was, save the user that Debian policy keeps.
//!
//! The install test is `#[ignore]`d: dpkg replaces the system's pitstop.so, which every test
//! cluster loads. `make test-package` runs it after the other tiers (never alongside them),
//! and installs the development build again afterwards.

use pitstop_tests::{pg_bin, ClusterOptions, PgCluster};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs and asserts success; stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = pitstop_tests::run(Command::new(program).args(args), &format!("{program} {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pg_config(arg: &str) -> String {
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
    ok(&pg_config, &[arg]).trim().to_string()
}

/// `pitstop check-config` of `file` with the binary just built: the effective settings (without
/// the line naming the file and the "# from the file" marks) and how many were marked.
fn effective_config(file: &Path) -> (String, usize) {
    let (code, out, err) =
        pitstop_tests::pitstop(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{}: {out}{err}", file.display());
    let mut from_file = 0;
    let settings = out
        .lines()
        .filter(|l| !l.starts_with("# pitstop effective configuration"))
        .map(|l| match l.strip_suffix("# from the file") {
            Some(setting) => {
                from_file += 1;
                setting.trim_end()
            }
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    (settings, from_file)
}

#[test]
fn the_packaged_configuration_is_valid_and_comments_out_the_defaults() {
    let shipped = repo_path("packaging/pitstop/pitstop.toml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    // Every setting is commented out: the file as shipped is the built-in defaults…
    let (defaults, from_file) = effective_config(&shipped);
    assert_eq!(from_file, 0, "{defaults}");
    let empty = std::env::temp_dir().join(format!("pitstop-empty-{}.toml", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    assert_eq!(defaults, effective_config(&empty).0);
    // …and each commented-out value is that default: uncommented, nothing changes.
    let uncommented: String = text
        .lines()
        .map(|l| {
            let setting = l.strip_prefix('#').filter(|rest| {
                rest.starts_with('[')
                    || rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            });
            format!("{}\n", setting.unwrap_or(l))
        })
        .collect();
    let settings = uncommented.lines().filter(|l| l.contains(" = ") && !l.starts_with('#')).count();
    assert!(settings >= 8, "only {settings} commented-out settings found:\n{uncommented}");
    std::fs::write(&empty, &uncommented).unwrap();
    let (uncommented_settings, from_file) = effective_config(&empty);
    assert_eq!(from_file, settings, "{uncommented_settings}");
    assert_eq!(
        defaults, uncommented_settings,
        "a commented-out value is not the default:\n{uncommented}"
    );
    std::fs::remove_file(&empty).unwrap();
}

/// The .deb of `package` for this workspace's version in `make package`'s output directory.
fn deb(package: &str) -> PathBuf {
    let dir = deb_dir();
    let prefix = format!("{package}_{VERSION}-");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run make package)", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(&prefix)
                && p.extension().is_some_and(|e| e == "deb")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{package} {VERSION} in {}: {found:?} (run make package)",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// The `make package` output directory.
fn deb_dir() -> PathBuf {
    std::env::var_os("PITSTOP_DEB_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_path("target"))
            .join("debian")
    })
}

/// An extension package's files, read from the .deb: the real /usr paths of `major` (a chroot's
/// prefix stripped), the library and every install and upgrade script of sql/.
fn assert_extension_layout(deb: &Path, major: &str) {
    let files: BTreeSet<String> = ok("dpkg-deb", &["-c", deb.to_str().unwrap()])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(|p| p.trim_start_matches('.').to_string()))
        .filter(|p| !p.ends_with('/'))
        .collect();
    let extdir = format!("/usr/share/postgresql/{major}/extension");
    let mut expected = vec![
        format!("/usr/lib/postgresql/{major}/lib/pitstop.so"),
        format!("{extdir}/pitstop.control"),
        format!("{extdir}/pitstop--{VERSION}.sql"),
    ];
    for script in std::fs::read_dir(repo_path("sql")).unwrap().flatten() {
        let name = script.file_name().to_string_lossy().into_owned();
        if name.starts_with("pitstop--") && name.ends_with(".sql") {
            expected.push(format!("{extdir}/{name}"));
        }
    }
    assert!(expected.iter().any(|p| p.matches("--").count() == 2), "no upgrade script in sql/");
    for file in &expected {
        assert!(files.contains(file), "{} lacks {file}: {files:?}", deb.display());
    }
    let stray: Vec<&String> = files
        .iter()
        .filter(|f| {
            !f.starts_with(&format!("/usr/share/doc/postgresql-{major}-pitstop/"))
                && !f.starts_with("/usr/share/lintian/overrides/")
                && !expected.contains(f)
        })
        .collect();
    assert!(stray.is_empty(), "{}: unexpected files {stray:?}", deb.display());
    let control = ok("dpkg-deb", &["-f", deb.to_str().unwrap(), "Package", "Depends", "Version"]);
    assert!(
        control.contains(&format!("Package: postgresql-{major}-pitstop\n"))
            && control.contains(&format!("Depends: postgresql-{major},")),
        "{control}"
    );
    assert!(control.contains(&format!("Version: {VERSION}-")), "{control}");
}

fn installed(package: &str) -> bool {
    let out = run("dpkg-query", &["-W", "-f=${db:Status-Status}", package]);
    out.status.success() && String::from_utf8_lossy(&out.stdout) == "installed"
}

/// Every path under the directories a package could touch (not following symbolic links),
/// without the package manager's own records and the PostgreSQL clusters' data.
fn file_tree() -> BTreeSet<PathBuf> {
    const SKIP: &[&str] =
        &["/var/lib/dpkg", "/var/lib/apt", "/var/lib/postgresql", "/var/lib/redis"];
    let mut all = BTreeSet::new();
    let mut todo: Vec<PathBuf> =
        ["/usr", "/etc", "/var/lib", "/opt"].iter().map(PathBuf::from).collect();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if SKIP.iter().any(|s| path == Path::new(s)) || path.starts_with("/opt/pitstop-pg") {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            all.insert(path);
        }
    }
    all
}

/// The files (not directories) `dpkg -L` lists for `package`.
fn package_files(package: &str) -> BTreeSet<PathBuf> {
    ok("dpkg", &["-L", package]).lines().map(PathBuf::from).filter(|p| !p.is_dir()).collect()
}

/// `getent passwd pitstop` as (uid, gid, home, shell).
fn pitstop_user() -> Option<(u32, u32, String, String)> {
    let out = run("getent", &["passwd", "pitstop"]);
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    (out.status.success() && f.len() == 7)
        .then(|| (f[2].parse().unwrap(), f[3].parse().unwrap(), f[5].to_string(), f[6].to_string()))
}

/// The SQL block of the README's "Install on an existing server" that creates the daemon's role.
fn readme_role_grants() -> String {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let section = readme
        .split("\n## Install on an existing server\n")
        .nth(1)
        .expect("README: no Install on an existing server section");
    let start = section.find("CREATE ROLE pitstop LOGIN;").expect("README: no CREATE ROLE pitstop");
    let block = &section[start..section[start..].find("```").map(|end| start + end).unwrap()];
    block.lines().map(str::trim).filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n")
}

#[test]
#[ignore = "dpkg replaces the system's pitstop.so: make test-package"]
fn packages_install_run_and_purge_cleanly() {
    let major = pg_config("--version")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let ext = format!("postgresql-{major}-pitstop");
    let (ext_deb, daemon_deb) = (deb(&ext), deb("pitstop"));
    for package in [ext.as_str(), "pitstop"] {
        if installed(package) {
            ok("dpkg", &["--purge", package]);
        }
    }

    let before = file_tree();
    ok("dpkg", &["-i", ext_deb.to_str().unwrap(), daemon_deb.to_str().unwrap()]);
    assert!(installed(&ext) && installed("pitstop"));
    // Every packaged file is on disk as packaged (dpkg's md5sums).
    assert_eq!(ok("dpkg", &["--verify", &ext, "pitstop"]), "");

    // The extension: the library where this PostgreSQL loads it from, the control file, every
    // install script (CREATE EXTENSION pitstop VERSION 'A') and every upgrade script; the
    // packages of other majors (make package PACKAGE_MAJORS=…) in their own /usr directories.
    assert_eq!(
        PathBuf::from(pg_config("--pkglibdir")),
        PathBuf::from(format!("/usr/lib/postgresql/{major}/lib"))
    );
    assert_eq!(
        PathBuf::from(pg_config("--sharedir")),
        PathBuf::from(format!("/usr/share/postgresql/{major}"))
    );
    let mut majors = Vec::new();
    for entry in std::fs::read_dir(deb_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(other) = name
            .strip_prefix("postgresql-")
            .and_then(|n| n.strip_suffix(".deb"))
            .filter(|n| n.contains(&format!("-pitstop_{VERSION}-")))
        {
            let other = other.split('-').next().unwrap().to_string();
            assert_extension_layout(&entry.path(), &other);
            majors.push(other);
        }
    }
    assert!(majors.contains(&major), "{majors:?}");
    let ext_files = package_files(&ext);
    assert!(
        ext_files.contains(&PathBuf::from(format!("/usr/lib/postgresql/{major}/lib/pitstop.so"))),
        "{ext_files:?}"
    );

    // pitstop: the binary, the unit pointing at it, the configuration, the manual pages.
    let daemon_files = package_files("pitstop");
    for file in [
        "/usr/bin/pitstop",
        "/lib/systemd/system/pitstop.service",
        "/etc/pitstop/pitstop.toml",
        "/usr/share/man/man1/pitstop.1.gz",
        "/usr/share/man/man1/pitstop-run.1.gz",
        "/usr/share/doc/pitstop/copyright",
        "/usr/share/doc/pitstop/changelog.Debian.gz",
        "/usr/share/doc/pitstop/examples/pitstop.example.toml",
    ] {
        assert!(daemon_files.contains(Path::new(file)), "pitstop lacks {file}: {daemon_files:?}");
    }
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "pitstop"]);
    assert!(conffiles.trim_start().starts_with("/etc/pitstop/pitstop.toml "), "{conffiles}");
    let unit = std::fs::read_to_string("/lib/systemd/system/pitstop.service").unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/pitstop run --config /etc/pitstop/pitstop.toml\n")
            && unit.contains("\nUser=pitstop\n")
            && unit.contains("\nDocumentation=man:pitstop-run(1)\n"),
        "{unit}"
    );
    // Where systemd is installed (it is in Debian's base system, not in every container).
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let out = run("systemd-analyze", &["verify", "/lib/systemd/system/pitstop.service"]);
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The system user, as Debian makes one, and the configuration readable by its group only.
    let (uid, gid, home, shell) = pitstop_user().expect("no pitstop user after install");
    assert!(
        uid < 1000 && home == "/var/lib/pitstop" && shell == "/usr/sbin/nologin",
        "{uid} {home} {shell}"
    );
    assert!(ok("getent", &["group", "pitstop"]).starts_with(&format!("pitstop:x:{gid}:")));
    let config = std::fs::metadata("/etc/pitstop/pitstop.toml").unwrap();
    assert_eq!((config.uid(), config.gid(), config.permissions().mode() & 0o777), (0, gid, 0o640));
    assert_eq!(std::fs::metadata("/var/lib/pitstop").unwrap().uid(), uid);
    assert_eq!(std::fs::metadata("/usr/bin/pitstop").unwrap().permissions().mode() & 0o777, 0o755);

    // Reinstalled (as an upgrade runs the maintainer scripts): the admin's edit of the
    // configuration is kept, with its rights, and the existing user is reused.
    let edit = "\n# edited by the package test\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open("/etc/pitstop/pitstop.toml")
        .and_then(|mut f| std::io::Write::write_all(&mut f, edit.as_bytes()))
        .unwrap();
    ok("dpkg", &["-i", daemon_deb.to_str().unwrap()]);
    assert!(std::fs::read_to_string("/etc/pitstop/pitstop.toml").unwrap().ends_with(edit));
    let config = std::fs::metadata("/etc/pitstop/pitstop.toml").unwrap();
    assert_eq!((config.uid(), config.gid(), config.permissions().mode() & 0o777), (0, gid, 0o640));
    assert_eq!(pitstop_user(), Some((uid, gid, home.clone(), shell.clone())));

    // A cluster of this machine's PostgreSQL preloading the packaged library.
    assert!(pg_bin("postgres").exists());
    let cluster = PgCluster::start_with(ClusterOptions::default());
    let mut client = cluster.connect();
    client.batch_execute("CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pitstop").unwrap();
    client.batch_execute("CREATE DATABASE upgraded").unwrap();
    let version: String = client
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'pitstop'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, VERSION);
    let top: i64 =
        client.query_one("SELECT count(*) FROM pitstop.top_queries()", &[]).unwrap().get(0);
    assert!(top > 0);
    // From the oldest frozen install script through the upgrade scripts.
    let mut old = cluster.connect_as("postgres", "upgraded");
    old.batch_execute("CREATE EXTENSION pitstop VERSION '0.1.0'; ALTER EXTENSION pitstop UPDATE")
        .unwrap();
    let version: String = old
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'pitstop'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, VERSION);
    drop(old);

    // The installed command line, as the daemon's user, with the installed configuration.
    let sudo_pitstop = |args: &[&str]| {
        let mut all = vec!["-u", "pitstop", "-H", "--", "/usr/bin/pitstop"];
        all.extend_from_slice(args);
        run("sudo", &all)
    };
    let out = sudo_pitstop(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("pitstop {VERSION}"));
    let out = sudo_pitstop(&["--help"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("doctor"),
        "{out:?}"
    );
    let out = sudo_pitstop(&["check-config"]);
    assert!(out.status.success(), "check-config of /etc/pitstop/pitstop.toml as pitstop: {out:?}");
    let dsn = cluster.dsn();
    let out = sudo_pitstop(&["doctor", "--json", "--dsn", &dsn]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "pitstop doctor: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: serde_json::Value = serde_json::from_str(&report).unwrap();
    for name in
        ["config", "connection", "shared_preload_libraries", "extension", "pg_stat_statements"]
    {
        let check = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name}: {report}"));
        assert_eq!(check["status"], "ok", "{name}: {check}");
    }

    // The README's role for the daemon has what the relay and the monitor run, and everything
    // maintenance runs but VACUUM/ANALYZE of tables owned by others (the README says so).
    client.batch_execute(&readme_role_grants()).unwrap();
    let role_dsn = format!("host=127.0.0.1 port={} user=pitstop dbname=postgres", cluster.port);
    let out = run(
        "sudo",
        &[
            "-u",
            "pitstop",
            "-H",
            "--",
            "env",
            "PITSTOP_REDIS_URL=redis://127.0.0.1:1",
            "/usr/bin/pitstop",
            "doctor",
            "--json",
            "--dsn",
            &role_dsn,
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}"));
    let check = |name: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name}: {report}"))
            .clone()
    };
    for name in ["relay_privileges", "monitor_privileges"] {
        assert_eq!(check(name)["status"], "ok", "{name} with the README's grants: {}", check(name));
    }
    let maintenance = check("maintenance_privileges");
    let fix = maintenance["fix"].as_str().unwrap_or_default();
    // pitstop's own tables belong to the superuser: no GRANT of it, a warning, not a failure.
    assert_eq!(maintenance["status"], "warning", "{maintenance}");
    assert!(
        fix.lines().all(|l| !l.starts_with("GRANT")) && fix.contains("tables of postgres"),
        "{maintenance}"
    );
    drop(client);
    drop(cluster);

    // The manual pages render, and man finds them.
    let page = ok("man", &["-P", "cat", "-l", "/usr/share/man/man1/pitstop.1.gz"]);
    assert!(page.contains("pitstop-report(1)") && page.contains("--dsn"), "{page}");
    assert_eq!(ok("man", &["-w", "pitstop-run"]).trim(), "/usr/share/man/man1/pitstop-run.1.gz");

    // Purge: every packaged file gone, the configuration and the home too, the user kept.
    let packaged: BTreeSet<PathBuf> = ext_files.union(&daemon_files).cloned().collect();
    ok("dpkg", &["--purge", "pitstop", &ext]);
    assert!(!installed(&ext) && !installed("pitstop"));
    let left: Vec<&PathBuf> = packaged.iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(!Path::new("/etc/pitstop").exists() && !Path::new("/var/lib/pitstop").exists());
    assert_eq!(
        pitstop_user().map(|u| u.0),
        Some(uid),
        "Debian keeps a purged package's system user"
    );

    // Nothing else changed: only files that were there before and that the packages took
    // over (the development install of the extension) may be gone.
    let after = file_tree();
    let added: Vec<&PathBuf> = after.difference(&before).collect();
    assert!(added.is_empty(), "left behind after purge: {added:?}");
    let removed: Vec<&PathBuf> =
        before.difference(&after).filter(|p| !packaged.contains(*p)).collect();
    assert!(removed.is_empty(), "removed though not packaged: {removed:?}");
}
