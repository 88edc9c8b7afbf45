//! Defence in depth for the statements maintenance runs: the plan comes from
//! `pitstop.maintenance_plan()`, and a command is executed only when its text has exactly the
//! shape expected for its action and names the plan row's own relation or index:
//!
//! - `vacuum`, `vacuum_freeze`: `VACUUM [(option, …)] schema.table` with options among
//!   ANALYZE, FREEZE, VERBOSE, SKIP_LOCKED (FREEZE required for `vacuum_freeze`);
//! - `analyze`: `ANALYZE schema.table`;
//! - `reindex`: `REINDEX INDEX CONCURRENTLY schema.index`.
//!
//! Identifiers are double-quoted (with `""` escapes) or plain lower-case names. Anything else —
//! a second statement, a comment, a literal, another relation — is refused.

use crate::quoted::read_quoted;

/// One row of `pitstop.maintenance_plan()`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub priority: i32,
    pub action: String,
    pub schema: String,
    pub relation: String,
    pub index_name: Option<String>,
    /// Quoted qualified table name (also for reindex): the unit of "one action per target".
    pub target: String,
    pub command: String,
    pub reason: String,
}

const VACUUM_OPTIONS: &[&str] = &["ANALYZE", "FREEZE", "VERBOSE", "SKIP_LOCKED"];

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

/// Splits `text` into words, quoted identifiers and `( ) , .`; refuses any other character.
fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' | ')' | ',' | '.' => {
                out.push(Token::Punct(c));
                chars.next();
            }
            '"' => {
                chars.next();
                match read_quoted(&mut chars) {
                    Ok(name) | Err(name) if name.contains('\0') => {
                        return Err("a NUL character in an identifier".into())
                    }
                    Err(_) => return Err("an unterminated quoted identifier".into()),
                    Ok(name) if name.is_empty() => return Err("an empty quoted identifier".into()),
                    Ok(name) => out.push(Token::Quoted(name)),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_ascii_alphanumeric() || ch == '_' || ch == '$' {
                        word.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

/// Reads tokens in order against the expected shape.
struct Cursor {
    tokens: std::vec::IntoIter<Token>,
}

impl Cursor {
    fn keyword(&mut self, keyword: &str) -> Result<(), String> {
        match self.tokens.next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword) => Ok(()),
            other => Err(format!("expected {keyword}, found {}", show(other))),
        }
    }

    fn punct(&mut self, p: char) -> Result<(), String> {
        match self.tokens.next() {
            Some(Token::Punct(c)) if c == p => Ok(()),
            other => Err(format!("expected {p:?}, found {}", show(other))),
        }
    }

    /// A quoted identifier, or a plain one that needs no quoting (lower case).
    fn identifier(&mut self) -> Result<String, String> {
        match self.tokens.next() {
            Some(Token::Quoted(name)) => Ok(name),
            Some(Token::Word(w))
                if w.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$'
                }) =>
            {
                Ok(w)
            }
            other => Err(format!("expected an identifier, found {}", show(other))),
        }
    }

    fn qualified(&mut self) -> Result<(String, String), String> {
        let schema = self.identifier()?;
        self.punct('.')?;
        Ok((schema, self.identifier()?))
    }

    /// A qualified name that must be `expected` (the plan's `what`).
    fn names(&mut self, expected: &(String, String), what: &str) -> Result<(), String> {
        let name = self.qualified()?;
        if name == *expected {
            Ok(())
        } else {
            Err(format!("it names {}.{}, not the plan's {what}", name.0, name.1))
        }
    }

    fn end(mut self) -> Result<(), String> {
        match self.tokens.next() {
            None => Ok(()),
            extra => Err(format!("unexpected {} after the statement", show(extra))),
        }
    }

    fn peek_punct(&self, p: char) -> bool {
        matches!(self.tokens.as_slice().first(), Some(Token::Punct(c)) if *c == p)
    }
}

fn show(token: Option<Token>) -> String {
    match token {
        None => "the end".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Quoted(q)) => format!("identifier \"{q}\""),
        Some(Token::Punct(c)) => format!("{c:?}"),
    }
}

/// Ok when `row.command` has the shape expected for `row.action` and names the row's
/// relation (or index); else why it is refused.
pub fn check(row: &PlanRow) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!("refused to run {:?} for action {}: {why}", row.command, row.action))
    };
    let table = (row.schema.clone(), row.relation.clone());
    let target = tokens(&row.target).and_then(|t| {
        let mut c = Cursor { tokens: t.into_iter() };
        let name = c.qualified()?;
        c.end().map(|()| name)
    });
    if target.as_ref() != Ok(&table) {
        return refuse(format!(
            "its target {:?} is not the table {}.{}",
            row.target, row.schema, row.relation
        ));
    }
    let mut c = match tokens(&row.command) {
        Ok(t) => Cursor { tokens: t.into_iter() },
        Err(e) => return refuse(e),
    };
    let shape = match row.action.as_str() {
        "vacuum" | "vacuum_freeze" => (|| {
            c.keyword("VACUUM")?;
            let mut options = Vec::new();
            if c.peek_punct('(') {
                c.punct('(')?;
                loop {
                    match c.tokens.next() {
                        Some(Token::Word(w))
                            if VACUUM_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(&w)) =>
                        {
                            options.push(w.to_ascii_uppercase())
                        }
                        other => {
                            return Err(format!(
                                "expected a VACUUM option ({}), found {}",
                                VACUUM_OPTIONS.join(", "),
                                show(other)
                            ))
                        }
                    }
                    if c.peek_punct(',') {
                        c.punct(',')?;
                    } else {
                        break;
                    }
                }
                c.punct(')')?;
            }
            if row.action == "vacuum_freeze" && !options.iter().any(|o| o == "FREEZE") {
                return Err("vacuum_freeze without the FREEZE option".into());
            }
            c.names(&table, "table")
        })(),
        "analyze" => (|| {
            c.keyword("ANALYZE")?;
            c.names(&table, "table")
        })(),
        "reindex" => (|| {
            c.keyword("REINDEX")?;
            c.keyword("INDEX")?;
            c.keyword("CONCURRENTLY")?;
            c.names(&(row.schema.clone(), row.index_name.clone().unwrap_or_default()), "index")
        })(),
        other => Err(format!("unknown action {other:?}")),
    };
    match shape.and_then(|()| c.end()) {
        Ok(()) => Ok(()),
        Err(why) => refuse(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: &str, command: &str) -> PlanRow {
        PlanRow {
            priority: 1,
            action: action.into(),
            schema: "public".into(),
            relation: "Orders".into(),
            index_name: (action == "reindex").then(|| "orders_pkey".into()),
            target: "public.\"Orders\"".into(),
            command: command.into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn the_expected_shapes_pass() {
        for (action, command) in [
            ("vacuum", "VACUUM (ANALYZE) \"public\".\"Orders\""),
            ("vacuum", "VACUUM public.\"Orders\""),
            ("vacuum", "vacuum (analyze, verbose) public . \"Orders\""),
            ("vacuum_freeze", "VACUUM (FREEZE, ANALYZE) \"public\".\"Orders\""),
            ("analyze", "ANALYZE \"public\".\"Orders\""),
            ("reindex", "REINDEX INDEX CONCURRENTLY \"public\".\"orders_pkey\""),
            ("reindex", "REINDEX INDEX CONCURRENTLY public.orders_pkey"),
        ] {
            assert_eq!(check(&row(action, command)), Ok(()), "{action}: {command}");
        }
        let mut quoted = row("analyze", "ANALYZE \"we\"\"ird\".\"Orders\"");
        quoted.schema = "we\"ird".into();
        quoted.target = "\"we\"\"ird\".\"Orders\"".into();
        assert_eq!(check(&quoted), Ok(()));
    }

    #[test]
    fn anything_unexpected_is_refused() {
        for (action, command) in [
            ("vacuum", "VACUUM public.\"Orders\"; DROP TABLE y"),
            ("vacuum", "VACUUM x; DROP TABLE y"),
            ("vacuum", "VACUUM (ANALYZE) \"public\".\"Orders\" -- hi"),
            ("vacuum", "VACUUM FULL \"public\".\"Orders\""),
            ("vacuum", "VACUUM (FULL) \"public\".\"Orders\""),
            ("vacuum", "VACUUM (ANALYZE) \"public\".\"Other\""),
            ("vacuum", "VACUUM (ANALYZE) \"Orders\""),
            ("vacuum", "VACUUM (ANALYZE) public.Orders"),
            ("vacuum", "VACUUM (ANALYZE \"public\".\"Orders\""),
            ("vacuum", "VACUUM (ANALYZE) \"public\".\"Orders\", \"public\".\"x\""),
            ("vacuum_freeze", "VACUUM (ANALYZE) \"public\".\"Orders\""),
            ("analyze", "VACUUM \"public\".\"Orders\""),
            ("analyze", "ANALYZE \"public\".\"Orders\" /* x */"),
            ("analyze", "ANALYZE \"public\".\"Orders\"\0"),
            ("analyze", "ANALYZE \"public\".\"Orders"),
            ("analyze", "ANALYZE \"public\".\"\""),
            ("analyze", "SELECT pg_sleep(1)"),
            ("analyze", ""),
            ("reindex", "REINDEX INDEX \"public\".\"orders_pkey\""),
            ("reindex", "REINDEX TABLE CONCURRENTLY \"public\".\"Orders\""),
            ("reindex", "REINDEX INDEX CONCURRENTLY \"public\".\"other_idx\""),
            ("reindex", "REINDEX INDEX CONCURRENTLY \"pg_catalog\".\"orders_pkey\""),
            ("drop", "DROP TABLE \"public\".\"Orders\""),
        ] {
            let result = check(&row(action, command));
            assert!(
                result.as_ref().is_err_and(|e| e.starts_with("refused")),
                "{action}: {command:?} gave {result:?}"
            );
        }
        let mut wrong_target = row("analyze", "ANALYZE \"public\".\"Orders\"");
        wrong_target.target = "\"public\".\"other\"".into();
        assert!(check(&wrong_target).unwrap_err().contains("target"));
    }
}
