//! Reading settings from the TOML file and `PITSTOP_*` environment variables, collecting
//! every error with its key path instead of stopping at the first, and remembering what was
//! read so that `check-config` can print the effective configuration.

use super::values::{Raw, Setting};
use std::collections::BTreeMap;
use std::fmt;

/// One problem with the configuration, named by its key path.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// `http.listen`, or the file's name for errors about the file itself.
    pub path: String,
    /// The environment variable the bad value came from, if any.
    pub env: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(env) = &self.env {
            write!(f, " (from {env})")?;
        }
        Ok(())
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Default,
    Profile,
    File,
    Env(String),
}

/// One effective setting as `check-config` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub path: String,
    pub value: toml::Value,
    pub origin: Origin,
}

/// The environment variable that overrides `path`: `http.listen` → `PITSTOP_HTTP_LISTEN`.
pub fn env_name(path: &str) -> String {
    format!("PITSTOP_{}", path.to_ascii_uppercase().replace('.', "_"))
}

pub struct Loader {
    file: toml::Table,
    /// The `PITSTOP_*` environment variables.
    env: BTreeMap<String, String>,
    errors: Vec<ConfigError>,
    shown: Vec<Shown>,
    /// Arrays of tables read with `entries`, and whether each came from the built-in defaults.
    lists: Vec<(String, bool)>,
}

impl Loader {
    pub fn new(file: toml::Table, env: BTreeMap<String, String>) -> Loader {
        Loader { file, env, errors: Vec::new(), shown: Vec::new(), lists: Vec::new() }
    }

    /// The number of entries of the array of tables at `section.key` (`[[alerts.rules]]`),
    /// taken from the file, else from `defaults` (a TOML document holding that key's array).
    /// Entries' keys are then read as `section.key[i].name`; lists have no environment
    /// overrides. Read a section's plain keys before its lists, so that the effective
    /// configuration prints as valid TOML.
    pub fn entries(&mut self, path: &str, defaults: &str) -> usize {
        let (section, key) = path.split_once('.').expect("lists live in a section");
        let from_file = lookup(&self.file, path).cloned();
        let from_defaults = from_file.is_none();
        let value = from_file.unwrap_or_else(|| {
            let doc: toml::Table = defaults.parse().expect("built-in list defaults are valid TOML");
            lookup(&doc, path).cloned().unwrap_or(toml::Value::Array(Vec::new()))
        });
        self.lists.push((path.to_string(), from_defaults));
        let count = match &value {
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_table() {
                        self.error(
                            &format!("{path}[{i}]"),
                            format!(
                                "expected a table ([[{path}]]), found a TOML {}",
                                item.type_str()
                            ),
                        );
                    }
                }
                items.len()
            }
            other => {
                self.error(
                    path,
                    format!(
                        "expected an array of tables ([[{path}]]), found a TOML {}",
                        other.type_str()
                    ),
                );
                0
            }
        };
        if from_defaults {
            let section =
                self.file.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(table) = section.as_table_mut() {
                table.insert(key.to_string(), value);
            }
        }
        if count == 0 {
            self.shown.push(Shown {
                path: path.to_string(),
                value: toml::Value::Array(Vec::new()),
                origin: Origin::Default,
            });
        }
        count
    }

    /// The value at `path`: from its environment variable, else from the file, else `default`.
    pub fn get<T: Setting>(&mut self, path: &str, default: T) -> T {
        self.read(path, default, Origin::Default, |_| Ok(()))
    }

    /// Like `get`, with a check of the parsed value (ranges, non-empty, …).
    pub fn checked<T: Setting>(
        &mut self,
        path: &str,
        default: T,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> T {
        self.read(path, default, Origin::Default, check)
    }

    /// Like `checked`, for settings whose default comes from the profile.
    pub fn profiled<T: Setting>(
        &mut self,
        path: &str,
        default: T,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> T {
        self.read(path, default, Origin::Profile, check)
    }

    fn read<T: Setting>(
        &mut self,
        path: &str,
        default: T,
        default_origin: Origin,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> T {
        let env = env_name(path);
        let file_value = lookup(&self.file, path);
        let env_value = if path.contains('[') { None } else { self.env.get(&env) };
        let list_default = self
            .lists
            .iter()
            .any(|(list, defaulted)| *defaulted && path.starts_with(&format!("{list}[")));
        let (raw, origin) = match (env_value, file_value) {
            (Some(text), _) => (Some(Raw::Env(text)), Origin::Env(env.clone())),
            (None, Some(value)) if list_default => (Some(Raw::Toml(value)), Origin::Default),
            (None, Some(value)) => (Some(Raw::Toml(value)), Origin::File),
            (None, None) => (None, default_origin),
        };
        let value = match raw {
            None => default,
            Some(raw) => match T::parse(raw).and_then(|v| check(&v).map(|()| v)) {
                Ok(v) => v,
                Err(message) => {
                    let env = matches!(origin, Origin::Env(_)).then_some(env);
                    self.errors.push(ConfigError { path: path.to_string(), env, message });
                    default
                }
            },
        };
        self.shown.push(Shown { path: path.to_string(), value: value.show(), origin });
        value
    }

    /// Records a cross-field error.
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let env = env_name(path);
        let env = self.env.contains_key(&env).then_some(env);
        self.errors.push(ConfigError { path: path.to_string(), env, message: message.into() });
    }

    /// The effective settings, or every error: unknown keys in the file and unknown
    /// `PITSTOP_<SECTION>_*` variables included.
    pub fn finish(mut self) -> Result<Vec<Shown>, Vec<ConfigError>> {
        let known: Vec<&str> = self.shown.iter().map(|s| s.path.as_str()).collect();
        let sections: Vec<&str> =
            known.iter().filter_map(|p| p.split_once('.').map(|(s, _)| s)).collect();
        let mut unknown = Vec::new();
        for (key, value) in &self.file {
            match value {
                toml::Value::Table(table) if sections.contains(&key.as_str()) => {
                    for (inner, inner_value) in table {
                        let path = format!("{key}.{inner}");
                        if self.lists.iter().any(|(list, _)| *list == path) {
                            let items =
                                inner_value.as_array().map(Vec::as_slice).unwrap_or_default();
                            for (i, item) in items.iter().enumerate() {
                                for field in item
                                    .as_table()
                                    .map(|t| t.keys().collect())
                                    .unwrap_or_else(Vec::new)
                                {
                                    let item_path = format!("{path}[{i}].{field}");
                                    if !known.contains(&item_path.as_str()) {
                                        unknown.push(ConfigError {
                                            path: item_path,
                                            env: None,
                                            message: "unknown key".into(),
                                        });
                                    }
                                }
                            }
                        } else if !known.contains(&path.as_str()) {
                            unknown.push(ConfigError {
                                path,
                                env: None,
                                message: "unknown key".into(),
                            });
                        }
                    }
                }
                _ if sections.contains(&key.as_str()) => unknown.push(ConfigError {
                    path: key.clone(),
                    env: None,
                    message: format!(
                        "expected a table ([{key}]), found a TOML {}",
                        value.type_str()
                    ),
                }),
                _ if known.contains(&key.as_str()) => {}
                _ => unknown.push(ConfigError {
                    path: key.clone(),
                    env: None,
                    message: "unknown key".into(),
                }),
            }
        }
        for name in self.env.keys() {
            let lower = name.trim_start_matches("PITSTOP_").to_ascii_lowercase();
            let in_section = sections.iter().any(|s| lower.starts_with(&format!("{s}_")));
            if in_section && !known.iter().any(|p| env_name(p) == *name) {
                let (section, key) = lower.split_once('_').unwrap_or((&lower, ""));
                unknown.push(ConfigError {
                    path: format!("{section}.{key}"),
                    env: Some(name.clone()),
                    message: "unknown key".into(),
                });
            }
        }
        self.errors.extend(unknown);
        if self.errors.is_empty() {
            Ok(self.shown)
        } else {
            Err(self.errors)
        }
    }
}

/// The value at a dotted path: `section.key`, a top-level `key`, or a list entry's key
/// `section.key[i].name`.
pub fn lookup<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut value: Option<&toml::Value> = None;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let container = match value {
            None => table,
            Some(v) => v.as_table()?,
        };
        let mut found = container.get(name)?;
        if let Some(i) = index {
            found = found.as_array()?.get(i)?;
        }
        value = Some(found);
    }
    value
}

/// The effective configuration as TOML, each value commented with where it came from.
pub fn render(shown: &[Shown], header: &str) -> String {
    let mut out = format!("# {header}\n");
    let mut section = "";
    let mut entry = "";
    for s in shown {
        let (sec, mut key) = s.path.split_once('.').unwrap_or(("", &s.path));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
            entry = "";
        }
        // A list entry's key (`rules[0].metric`): a `[[section.rules]]` header per entry.
        if let Some((list_entry, field)) = key.split_once("].") {
            if list_entry != entry {
                let list = list_entry.split('[').next().unwrap_or(list_entry);
                out.push_str(&format!("\n[[{sec}.{list}]]\n"));
                entry = list_entry;
            }
            key = field;
        }
        let line = format!("{key} = {}", s.value);
        match &s.origin {
            Origin::Default => out.push_str(&format!("{line}\n")),
            Origin::Profile => out.push_str(&format!("{line:<44} # from the profile\n")),
            Origin::File => out.push_str(&format!("{line:<44} # from the file\n")),
            Origin::Env(name) => out.push_str(&format!("{line:<44} # from {name}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loader(file: &str, env: &[(&str, &str)]) -> Loader {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Loader::new(file.parse().unwrap(), env)
    }

    #[test]
    fn environment_beats_file_beats_default() {
        let mut l = loader(
            "[http]\nenabled = false\nlisten = \"127.0.0.1:1\"\n",
            &[("PITSTOP_HTTP_LISTEN", "127.0.0.1:2")],
        );
        assert!(!l.get("http.enabled", true));
        assert_eq!(l.get("http.listen", "x".to_string()), "127.0.0.1:2");
        assert_eq!(l.get("http.other", 7u32), 7);
        let shown = l.finish().unwrap();
        assert_eq!(shown[0].origin, Origin::File);
        assert_eq!(shown[1].origin, Origin::Env("PITSTOP_HTTP_LISTEN".into()));
        assert_eq!(shown[2].origin, Origin::Default);
    }

    #[test]
    fn every_error_is_collected_with_its_path() {
        let mut l = loader(
            "profile = 3\nstray = 1\n[http]\nport = 1\n[relay]\nbatch_size = \"many\"\n[log]\nlevel = \"info\"\n",
            &[("PITSTOP_RELAY_POLL_INTERVAL", "often"), ("PITSTOP_LOG_COLOUR", "x"), ("PITSTOP_DSN", "ignored")],
        );
        l.get("profile", "balanced".to_string());
        l.get("http.listen", "x".to_string());
        l.get("relay.batch_size", 1u32);
        l.get("relay.poll_interval", std::time::Duration::from_secs(1));
        l.get("log.level", "info".to_string());
        let errors: Vec<String> = l.finish().unwrap_err().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "profile: expected a string, found a TOML integer",
                "relay.batch_size: expected a whole number, found a TOML string",
                "relay.poll_interval: \"often\" is not a duration such as \"500ms\", \"5s\", \"2m\" or \"1h\" (from PITSTOP_RELAY_POLL_INTERVAL)",
                "http.port: unknown key",
                "stray: unknown key",
                "log.colour: unknown key (from PITSTOP_LOG_COLOUR)",
            ]
        );
    }

    #[test]
    fn a_section_must_be_a_table() {
        let mut l = loader("http = 5\n", &[]);
        l.get("http.listen", String::new());
        assert_eq!(
            l.finish().unwrap_err()[0].to_string(),
            "http: expected a table ([http]), found a TOML integer"
        );
    }

    const RULE_DEFAULTS: &str =
        "[[alerts.rules]]\nname = \"cpu\"\n[[alerts.rules]]\nname = \"memory\"\n";

    fn read_rules(l: &mut Loader) -> Vec<String> {
        l.get("alerts.webhook", String::new());
        (0..l.entries("alerts.rules", RULE_DEFAULTS))
            .map(|i| l.get(&format!("alerts.rules[{i}].name"), String::new()))
            .collect()
    }

    #[test]
    fn lists_come_from_the_file_else_from_the_defaults() {
        let mut l = loader("", &[]);
        assert_eq!(read_rules(&mut l), ["cpu", "memory"]);
        let shown = l.finish().unwrap();
        assert!(shown.iter().all(|s| s.origin == Origin::Default), "{shown:?}");
        let text = render(&shown, "effective");
        assert!(text.contains("[alerts]\nwebhook = \"\"\n\n[[alerts.rules]]\nname = \"cpu\"\n\n[[alerts.rules]]\nname = \"memory\""), "{text}");
        assert_eq!(
            text.parse::<toml::Table>().unwrap()["alerts"]["rules"].as_array().unwrap().len(),
            2
        );

        let mut l = loader("[alerts]\nrules = []\n", &[]);
        assert!(read_rules(&mut l).is_empty(), "an empty list in the file turns the defaults off");
        let text = render(&l.finish().unwrap(), "effective");
        assert!(text.contains("rules = []"), "{text}");

        let mut l = loader("[[alerts.rules]]\nname = \"mine\"\n", &[]);
        assert_eq!(read_rules(&mut l), ["mine"]);
        assert_eq!(l.finish().unwrap()[1].origin, Origin::File);
    }

    #[test]
    fn unknown_keys_and_bad_shapes_in_lists_are_errors() {
        let mut l = loader("[[alerts.rules]]\nname = \"a\"\nthreshhold = 3\n", &[]);
        read_rules(&mut l);
        let errors: Vec<String> = l.finish().unwrap_err().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors, ["alerts.rules[0].threshhold: unknown key"]);
        let mut l = loader("[alerts]\nrules = 3\n", &[]);
        read_rules(&mut l);
        assert!(l.finish().unwrap_err()[0]
            .to_string()
            .starts_with("alerts.rules: expected an array of tables"));
        let mut l = loader("[alerts]\nrules = [1]\n", &[]);
        read_rules(&mut l);
        assert!(l.finish().unwrap_err()[0]
            .to_string()
            .starts_with("alerts.rules[0]: expected a table"));
    }

    #[test]
    fn rendering_groups_sections_and_names_origins() {
        let shown = vec![
            Shown {
                path: "profile".into(),
                value: toml::Value::String("balanced".into()),
                origin: Origin::Default,
            },
            Shown {
                path: "http.listen".into(),
                value: toml::Value::String("127.0.0.1:1".into()),
                origin: Origin::Env("PITSTOP_HTTP_LISTEN".into()),
            },
            Shown {
                path: "http.enabled".into(),
                value: toml::Value::Boolean(true),
                origin: Origin::File,
            },
        ];
        let text = render(&shown, "effective");
        assert!(
            text.starts_with(
                "# effective\nprofile = \"balanced\"\n\n[http]\nlisten = \"127.0.0.1:1\""
            ),
            "{text}"
        );
        assert!(
            text.contains("# from PITSTOP_HTTP_LISTEN") && text.contains("enabled = true"),
            "{text}"
        );
        assert!(text.parse::<toml::Table>().is_ok(), "rendered config must be valid TOML:\n{text}");
    }
}
