//! `shared_preload_libraries` as PostgreSQL reads it (a comma-separated list whose entries may
//! be double-quoted, `""` inside quotes standing for one `"`), and the ALTER SYSTEM that adds
//! what is missing while keeping every existing entry.

use crate::quoted::read_quoted;

/// The entries of a list setting as the server splits it (`SplitDirectoriesString`):
/// whitespace around entries ignored, quoted entries kept as written inside the quotes.
pub fn parse(value: &str) -> Result<Vec<String>, String> {
    let mut entries = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(entries);
        }
        let mut entry = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            entry =
                read_quoted(&mut chars).map_err(|_| format!("unterminated quote in {value:?}"))?;
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                entry.push(c);
                chars.next();
            }
            entry.truncate(entry.trim_end().len());
        }
        if entry.is_empty() {
            return Err(format!("empty entry in {value:?}"));
        }
        entries.push(entry);
        match chars.next() {
            None => return Ok(entries),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?} after an entry in {value:?}")),
        }
    }
}

/// Whether `entries` load library `name` (`name`, `name.so`, `$libdir/name`, a path to it).
pub fn loads(entries: &[String], name: &str) -> bool {
    entries.iter().any(|e| {
        let file = e.rsplit('/').next().unwrap_or(e);
        file.strip_suffix(".so").unwrap_or(file) == name
    })
}

/// The list with each of `needed` not yet loaded appended, in order.
pub fn with(entries: &[String], needed: &[&str]) -> Vec<String> {
    let mut list = entries.to_vec();
    for name in needed {
        if !loads(&list, name) {
            list.push(name.to_string());
        }
    }
    list
}

/// The statement setting the list: one string literal per entry (`'` doubled). A single
/// literal holding the whole comma-separated list would be taken as one library's name: the
/// server quotes each element of a list setting when it writes postgresql.auto.conf.
pub fn alter_system(entries: &[String]) -> String {
    let list = entries
        .iter()
        .map(|e| format!("'{}'", e.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ALTER SYSTEM SET shared_preload_libraries = {list};")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_split_as_the_server_splits_them() {
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert_eq!(parse("  ").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse("pg_stat_statements, auto_explain").unwrap(),
            list(&["pg_stat_statements", "auto_explain"])
        );
        assert_eq!(parse(r#""my lib" , "a,b""c",x"#).unwrap(), list(&["my lib", "a,b\"c", "x"]));
        assert!(parse("a,,b").is_err());
        assert!(parse("\"open").is_err());
    }

    #[test]
    fn pitstop_is_found_by_name_path_or_file() {
        for loaded in
            ["pitstop", "$libdir/pitstop", "/usr/lib/postgresql/15/lib/pitstop.so", "pitstop.so"]
        {
            assert!(loads(&list(&["pg_stat_statements", loaded]), "pitstop"), "{loaded}");
        }
        assert!(!loads(&list(&["pitstop_extra", "pg_stat_statements"]), "pitstop"));
    }

    #[test]
    fn the_fix_keeps_every_entry_one_literal_each() {
        let current = parse(r#"auto_explain,"my lib","it's""q""#).unwrap();
        let fixed = with(&current, &["pg_stat_statements", "pitstop"]);
        assert_eq!(
            alter_system(&fixed),
            r#"ALTER SYSTEM SET shared_preload_libraries = 'auto_explain', 'my lib', 'it''s"q', 'pg_stat_statements', 'pitstop';"#
        );
        assert_eq!(
            alter_system(&with(&[], &["pitstop"])),
            "ALTER SYSTEM SET shared_preload_libraries = 'pitstop';"
        );
        assert_eq!(with(&list(&["pitstop"]), &["pitstop"]), list(&["pitstop"]));
    }
}
