//! pgbench script files: SQL statements (ended by `;` outside quotes and comments, possibly
//! over several lines) with `:var` references, and the meta-commands `\set name expr` and
//! `\sleep n [us|ms|s]`. One run of a script is one transaction, as in pgbench. Errors name
//! the file and line.

use super::expr::{self, Expr};
use std::collections::HashSet;

#[derive(Debug)]
pub struct Script {
    pub name: String,
    pub weight: u32,
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Set { name: String, expr: Expr },
    Sleep { amount: SleepAmount, unit_us: u64 },
    Sql(Statement),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SleepAmount {
    Const(u64),
    Var(String),
}

/// One SQL statement: literal text and variable references in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub line: usize,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Var(String),
}

impl Statement {
    /// The text with `$1…$n` in place of the variables, and the variable of each parameter.
    pub fn parameterized(&self) -> (String, Vec<String>) {
        let mut text = String::new();
        let mut params: Vec<String> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Var(v) => {
                    let n = params.iter().position(|p| p == v).unwrap_or_else(|| {
                        params.push(v.clone());
                        params.len() - 1
                    });
                    text.push_str(&format!("${}", n + 1));
                }
            }
        }
        (text, params)
    }

    /// The statement as written, `:var` kept (for reports).
    pub fn display(&self) -> String {
        let text: String = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Var(v) => format!(":{v}"),
            })
            .collect();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// pgbench's built-in scripts that pitstop bench also knows (`-b NAME`).
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "tpcb-like" => Some(
            "\\set aid random(1, 100000 * :scale)\n\\set bid random(1, 1 * :scale)\n\\set tid random(1, 10 * :scale)\n\\set delta random(-5000, 5000)\nBEGIN;\nUPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\nUPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;\nUPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;\nINSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);\nEND;\n",
        ),
        "select-only" => Some("\\set aid random(1, 100000 * :scale)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"),
        _ => None,
    }
}

/// Splits `path@weight` (weight 1 when absent) as pgbench's `-f`.
pub fn split_weight(arg: &str) -> Result<(&str, u32), String> {
    match arg.rsplit_once('@') {
        Some((path, w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
            let weight = w.parse::<u32>().map_err(|_| format!("weight too large in \"{arg}\""))?;
            Ok((path, weight))
        }
        _ => Ok((arg, 1)),
    }
}

/// Parses a script; `name` is used in error messages (`name:line: …`).
pub fn parse(name: &str, text: &str, weight: u32) -> Result<Script, String> {
    let mut commands = Vec::new();
    let mut sql = SqlSplitter::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if sql.is_empty() && trimmed.starts_with('\\') {
            let command = meta(trimmed).map_err(|e| format!("{name}:{number}: {e}"))?;
            commands.push(command);
            continue;
        }
        for statement in sql.feed(line, number) {
            commands.push(Command::Sql(statement));
        }
    }
    if let Some(open) = sql.unterminated() {
        return Err(format!("{name}:{}: {open} not closed at the end of the file", sql.start_line));
    }
    commands.extend(sql.finish().map(Command::Sql));
    if !commands.iter().any(|c| matches!(c, Command::Sql(_))) {
        return Err(format!("{name}: no SQL statement in the script"));
    }
    Ok(Script { name: name.to_string(), weight, commands })
}

fn meta(line: &str) -> Result<Command, String> {
    let body = &line[1..];
    let (word, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let rest = rest.trim();
    match word.to_ascii_lowercase().as_str() {
        "set" => {
            let (name, text) = rest
                .split_once(char::is_whitespace)
                .ok_or("\\set needs a variable name and an expression")?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid variable name \"{name}\""));
            }
            let expr = expr::parse(text.trim()).map_err(|e| format!("\\set {name}: {e}"))?;
            Ok(Command::Set { name: name.to_string(), expr })
        }
        "sleep" => {
            let mut words = rest.split_whitespace();
            let amount = words.next().ok_or("\\sleep needs a duration")?;
            let amount = match amount.strip_prefix(':') {
                Some(var) => SleepAmount::Var(var.to_string()),
                None => SleepAmount::Const(
                    amount
                        .parse()
                        .map_err(|_| format!("\\sleep: \"{amount}\" is not a whole number"))?,
                ),
            };
            let unit_us = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("s") => 1_000_000,
                Some("ms") => 1_000,
                Some("us") => 1,
                Some(other) => {
                    return Err(format!("\\sleep: unknown unit \"{other}\" (us, ms or s)"))
                }
            };
            if let Some(extra) = words.next() {
                return Err(format!("\\sleep: unexpected \"{extra}\""));
            }
            Ok(Command::Sleep { amount, unit_us })
        }
        other => Err(format!(
            "unsupported meta-command \\{other} (pitstop bench knows \\set and \\sleep)"
        )),
    }
}

/// Variables a script reads before any `\set` of them, that `predefined` does not give:
/// `(line, name)` of the first use each (line 0 for a `\set`'s own line unknown).
pub fn undefined_variables(script: &Script, predefined: &HashSet<String>) -> Vec<String> {
    let mut defined = predefined.clone();
    let mut missing = Vec::new();
    for command in &script.commands {
        let mut reads = Vec::new();
        match command {
            Command::Set { expr, .. } => expr::variables(expr, &mut reads),
            Command::Sleep { amount: SleepAmount::Var(v), .. } => reads.push(v),
            Command::Sleep { .. } => {}
            Command::Sql(s) => reads.extend(s.pieces.iter().filter_map(|p| {
                if let Piece::Var(v) = p {
                    Some(v.as_str())
                } else {
                    None
                }
            })),
        }
        for name in reads {
            if !defined.contains(name) && !missing.iter().any(|m: &String| m == name) {
                missing.push(name.to_string());
            }
        }
        if let Command::Set { name, .. } = command {
            defined.insert(name.clone());
        }
    }
    missing
}

/// Cuts SQL into statements at `;` outside quotes, dollar quotes and comments, and finds
/// `:name` references (not `::` casts) outside them.
#[derive(Default)]
struct SqlSplitter {
    pieces: Vec<Piece>,
    text: String,
    start_line: usize,
    state: State,
    block_depth: usize,
}

#[derive(Default, Clone, PartialEq)]
enum State {
    #[default]
    Code,
    Single,
    Double,
    Dollar(String),
    Block,
}

impl SqlSplitter {
    fn is_empty(&self) -> bool {
        self.pieces.is_empty() && self.text.trim().is_empty()
    }

    fn unterminated(&self) -> Option<&'static str> {
        match self.state {
            State::Code => None,
            State::Single => Some("a quoted string (')"),
            State::Double => Some("a quoted identifier (\")"),
            State::Dollar(_) => Some("a dollar-quoted string"),
            State::Block => Some("a /* comment"),
        }
    }

    fn feed(&mut self, line: &str, number: usize) -> Vec<Statement> {
        let mut done = Vec::new();
        if self.is_empty() {
            self.start_line = number;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match self.state.clone() {
                State::Code => match c {
                    '\'' => self.state = State::Single,
                    '"' => self.state = State::Double,
                    '-' if next == Some('-') => break, // a comment to the end of the line
                    '/' if next == Some('*') => {
                        self.state = State::Block;
                        self.block_depth = 1;
                        i += 2;
                        continue;
                    }
                    '$' => {
                        let tag_end =
                            chars[i + 1..].iter().position(|&t| !(t.is_alphanumeric() || t == '_'));
                        if let Some(len) = tag_end.filter(|&len| {
                            chars[i + 1 + len] == '$'
                                && !chars.get(i + 1).is_some_and(char::is_ascii_digit)
                        }) {
                            let tag: String = chars[i..i + len + 2].iter().collect();
                            self.text.push_str(&tag);
                            self.state = State::Dollar(tag);
                            i += len + 2;
                            continue;
                        }
                    }
                    ':' if next == Some(':') => {
                        self.text.push_str("::");
                        i += 2;
                        continue;
                    }
                    ':' if next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '_') => {
                        let len = chars[i + 1..]
                            .iter()
                            .take_while(|n| n.is_ascii_alphanumeric() || **n == '_')
                            .count();
                        self.flush_text();
                        self.pieces.push(Piece::Var(chars[i + 1..i + 1 + len].iter().collect()));
                        i += 1 + len;
                        continue;
                    }
                    ';' => {
                        self.text.push(';');
                        if let Some(statement) = self.take() {
                            done.push(statement);
                        }
                        self.start_line = number;
                        i += 1;
                        continue;
                    }
                    _ => {}
                },
                State::Single if c == '\'' => self.state = State::Code,
                State::Double if c == '"' => self.state = State::Code,
                State::Dollar(tag)
                    if chars[i..].iter().take(tag.chars().count()).copied().eq(tag.chars()) =>
                {
                    self.text.push_str(&tag);
                    self.state = State::Code;
                    i += tag.chars().count();
                    continue;
                }
                State::Block if c == '*' && next == Some('/') => {
                    self.block_depth -= 1;
                    if self.block_depth == 0 {
                        self.state = State::Code;
                    }
                    i += 2;
                    continue;
                }
                State::Block if c == '/' && next == Some('*') => {
                    self.block_depth += 1;
                    i += 2;
                    continue;
                }
                _ => {}
            }
            if self.state != State::Block {
                self.text.push(c);
            }
            i += 1;
        }
        self.text.push('\n');
        done
    }

    fn flush_text(&mut self) {
        if !self.text.is_empty() {
            if self.pieces.is_empty() {
                let trimmed = self.text.trim_start();
                if !trimmed.is_empty() {
                    self.pieces.push(Piece::Text(trimmed.to_string()));
                }
            } else {
                self.pieces.push(Piece::Text(std::mem::take(&mut self.text)));
            }
            self.text.clear();
        }
    }

    fn take(&mut self) -> Option<Statement> {
        self.flush_text();
        if let Some(Piece::Text(last)) = self.pieces.last_mut() {
            let trimmed = last.trim_end().trim_end_matches(';').trim_end().to_string();
            *last = trimmed;
        }
        let pieces = std::mem::take(&mut self.pieces);
        let has_code = pieces.iter().any(|p| {
            matches!(p, Piece::Var(_)) || matches!(p, Piece::Text(t) if !t.trim().is_empty())
        });
        has_code.then_some(Statement { line: self.start_line, pieces })
    }

    fn finish(&mut self) -> Option<Statement> {
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(script: &Script) -> Vec<(usize, String)> {
        script
            .commands
            .iter()
            .filter_map(|c| {
                if let Command::Sql(s) = c {
                    Some((s.line, s.parameterized().0))
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn tpcb_like_parses_as_pgbench_reads_it() {
        let s = parse("tpcb-like", builtin("tpcb-like").unwrap(), 1).unwrap();
        assert_eq!(s.commands.len(), 11);
        let statements = sql(&s);
        assert_eq!(statements[0], (5, "BEGIN".to_string()));
        assert_eq!(
            statements[1],
            (6, "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2".to_string())
        );
        assert_eq!(statements[5].0, 10);
        assert_eq!(statements[6], (11, "END".to_string()));
        let Command::Sql(insert) = &s.commands[9] else { panic!() };
        assert_eq!(insert.parameterized().1, ["tid", "bid", "aid", "delta"]);
        assert!(undefined_variables(&s, &HashSet::from(["scale".to_string()])).is_empty());
        assert_eq!(undefined_variables(&s, &HashSet::new()), ["scale"]);
    }

    #[test]
    fn statements_span_lines_and_skip_quotes_casts_and_comments() {
        let text = "-- header\nSELECT o.id, ':notvar', $$ a ; :nor $$\n  FROM t -- ; :nor\n WHERE id = :id::int /* ; :nor */;\n\\sleep 5 ms\nSELECT 1; SELECT :id\n";
        let s = parse("x.sql", text, 3).unwrap();
        assert_eq!(s.weight, 3);
        let statements = sql(&s);
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0].0, 2);
        assert!(
            statements[0].1.starts_with("SELECT o.id, ':notvar', $$ a ; :nor $$"),
            "{}",
            statements[0].1
        );
        assert!(statements[0].1.ends_with("WHERE id = $1::int"), "{}", statements[0].1);
        assert_eq!(s.commands[1], Command::Sleep { amount: SleepAmount::Const(5), unit_us: 1000 });
        assert_eq!(statements[1], (6, "SELECT 1".to_string()));
        assert_eq!(statements[2], (6, "SELECT $1".to_string()));
        // A last statement without a semicolon counts, as in pgbench.
        assert_eq!(sql(&parse("y", "SELECT 2", 1).unwrap()), [(1, "SELECT 2".to_string())]);
    }

    #[test]
    fn bad_scripts_name_file_and_line() {
        let cases = [
            (
                "SELECT 1;\n\\set aid random(1)\n",
                "bad.sql:2: \\set aid: random() takes 2 argument(s), got 1",
            ),
            ("SELECT 1;\n\n\\set\n", "bad.sql:3: \\set needs a variable name and an expression"),
            ("\\shell ls\nSELECT 1;", "bad.sql:1: unsupported meta-command \\shell"),
            ("\\sleep 3 hours\nSELECT 1;", "bad.sql:1: \\sleep: unknown unit \"hours\""),
            ("SELECT 1;\nSELECT 'open\n;\n", "bad.sql:2: a quoted string (') not closed"),
            ("\\set x 1\n", "bad.sql: no SQL statement"),
            ("\\set a-b 1\nSELECT 1;", "bad.sql:1: invalid variable name \"a-b\""),
        ];
        for (text, expected) in cases {
            let err = parse("bad.sql", text, 1).unwrap_err();
            assert!(err.starts_with(expected), "{err:?} should start with {expected:?}");
        }
    }

    #[test]
    fn the_demo_workload_scripts_parse_with_every_variable_set() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/demo/workload");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let script =
                parse(&path.display().to_string(), &std::fs::read_to_string(&path).unwrap(), 1)
                    .unwrap();
            assert!(undefined_variables(&script, &HashSet::new()).is_empty(), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "{seen} scripts in {}", dir.display());
    }

    #[test]
    fn weights_split_like_pgbench() {
        assert_eq!(split_weight("a.sql@60"), Ok(("a.sql", 60)));
        assert_eq!(split_weight("a.sql"), Ok(("a.sql", 1)));
        assert_eq!(split_weight("mail@host.sql"), Ok(("mail@host.sql", 1)));
        assert!(split_weight("a.sql@99999999999").is_err());
    }
}
