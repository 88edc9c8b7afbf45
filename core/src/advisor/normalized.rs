//! Making the texts pg_stat_statements records plannable. It replaces every literal with `$n`,
//! typed literals included: `date '1998-12-01' - interval '90' day` is recorded as
//! `date $1 - interval $2 day`, which does not parse, and `1200 + 11` as `$2 + $3`, whose
//! types no context fixes. Two steps, both over the PostgreSQL scanner's tokens (never the raw
//! text, so quoted identifiers and strings are left alone):
//!
//! 1. `cast_typed_literals`: a type name followed by a parameter becomes a cast,
//!    `CAST($1 AS date)`, `CAST($2 AS interval day)`.
//! 2. `infer_parameter_types`: the statement is analysed as PREPARE would; where PostgreSQL
//!    cannot type a parameter, the error's position says which construct failed, and the
//!    parameters there get a type from their context before the next attempt.

use std::collections::BTreeMap;

pub const TEXT: u32 = 25;
pub const INT8: u32 = 20;
pub const INT4: u32 = 23;
pub const NUMERIC: u32 = 1700;
pub const UNKNOWN: u32 = 705;

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `$n`
    Param(u32),
    /// An identifier, quoted or not.
    Ident,
    /// A keyword, lower case.
    Keyword(String),
    /// An integer constant.
    Int,
    /// A one-character token: `(`, `)`, `,`, `+`, `.` …
    Char(char),
    /// A multi-character operator (`||`, `<=`, …).
    Op(String),
    /// Anything else (strings, other constants, `::`).
    Other,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: Kind,
    /// Byte offsets in the statement text.
    pub start: usize,
    pub end: usize,
}

impl Token {
    fn keyword(&self, word: &str) -> bool {
        matches!(&self.kind, Kind::Keyword(k) if k == word)
    }

    fn is_char(&self, c: char) -> bool {
        self.kind == Kind::Char(c)
    }
}

/// Where a token that starts at `start` ends: the scanner gives only starts.
pub fn token_end(sql: &str, kind: &Kind, start: usize, next_start: usize) -> usize {
    let rest = &sql.as_bytes()[start..next_start.min(sql.len())];
    let word = |skip: usize| {
        start
            + skip
            + rest[skip.min(rest.len())..]
                .iter()
                .take_while(|b| {
                    b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$' || **b >= 0x80
                })
                .count()
    };
    match kind {
        Kind::Char(_) => start + 1,
        Kind::Op(op) => start + op.len(),
        Kind::Param(_) => word(1),
        Kind::Ident if rest.first() == Some(&b'"') => {
            // A quoted identifier ends at the quote that is not doubled.
            let mut i = 1;
            while i < rest.len() {
                if rest[i] == b'"' {
                    if rest.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    return start + i + 1;
                }
                i += 1;
            }
            start + rest.len()
        }
        Kind::Ident | Kind::Keyword(_) | Kind::Int => word(0),
        Kind::Other => start + sql[start..next_start.min(sql.len())].trim_end().len(),
    }
}

/// Type names that are keywords, as the grammar spells them (last word first is how they
/// are matched, backwards from the parameter).
const KEYWORD_TYPES: &[&[&str]] = &[
    &["bigint"],
    &["bit"],
    &["bit", "varying"],
    &["boolean"],
    &["char"],
    &["char", "varying"],
    &["character"],
    &["character", "varying"],
    &["dec"],
    &["decimal"],
    &["double", "precision"],
    &["float"],
    &["int"],
    &["integer"],
    &["interval"],
    &["json"],
    &["national", "char"],
    &["national", "character"],
    &["national", "char", "varying"],
    &["national", "character", "varying"],
    &["nchar"],
    &["nchar", "varying"],
    &["numeric"],
    &["real"],
    &["smallint"],
    &["time"],
    &["timestamp"],
    &["varchar"],
];

const INTERVAL_FIELDS: &[&str] = &["year", "month", "day", "hour", "minute", "second"];

/// +1 for a token that opens a nesting (`(`, `[`, CASE), -1 for one that closes it.
fn nesting(token: &Token) -> i32 {
    if token.is_char('(') || token.is_char('[') || token.keyword("case") {
        1
    } else if token.is_char(')') || token.is_char(']') || token.keyword("end") {
        -1
    } else {
        0
    }
}

/// The index of the token that closes the `(`, `[` or CASE at `at`, or that opens the `)`,
/// `]` or END at `at`.
fn matching(tokens: &[Token], at: usize) -> Option<usize> {
    let step = nesting(&tokens[at]);
    if step == 0 {
        return None;
    }
    let mut depth = 0;
    let mut i = at;
    loop {
        read_back();
        depth += nesting(&tokens[i]) * step;
        if depth == 0 {
            return Some(i);
        }
        i = if step > 0 { i + 1 } else { i.checked_sub(1)? };
        if i >= tokens.len() {
            return None;
        }
    }
}

/// The first token of the type name that ends at `end` (inclusive), and whether it is
/// `interval`. Accepts `timestamp(3) with time zone`, `numeric(10, 2)`, `double precision`,
/// `pg_catalog.date`, `"MyType"`.
fn type_name_start(tokens: &[Token], end: usize) -> Option<(usize, bool)> {
    let mut j = end;
    // [WITH | WITHOUT] TIME ZONE, only after time or timestamp.
    let mut zoned = false;
    if j >= 3
        && tokens[j].keyword("zone")
        && tokens[j - 1].keyword("time")
        && (tokens[j - 2].keyword("with") || tokens[j - 2].keyword("without"))
    {
        j -= 3;
        zoned = true;
    }
    // (typmods): integers and commas only, read back to the `(` (not by matching()'s walk:
    // one per parameter after a `)` made `((((1)$1)$2)$3…` quadratic).
    if tokens[j].is_char(')') {
        let mut open = j.checked_sub(1)?;
        while tokens[open].kind == Kind::Int || tokens[open].is_char(',') {
            read_back();
            open = open.checked_sub(1)?;
        }
        if open == 0 || !tokens[open].is_char('(') {
            return None;
        }
        j = open - 1;
    }
    if zoned {
        return (tokens[j].keyword("time") || tokens[j].keyword("timestamp")).then_some((j, false));
    }
    // A keyword type, longest spelling first.
    let mut best: Option<(usize, bool)> = None;
    for words in KEYWORD_TYPES {
        let n = words.len();
        if j + 1 >= n
            && words.iter().enumerate().all(|(w, word)| tokens[j + 1 - n + w].keyword(word))
            && best.is_none_or(|(b, _)| j + 1 - n < b)
        {
            best = Some((j + 1 - n, words == &["interval"]));
        }
    }
    if best.is_some() {
        return best;
    }
    // A (qualified) type name: ident [. ident]*.
    if tokens[j].kind != Kind::Ident {
        return None;
    }
    while j >= 2 && tokens[j - 1].is_char('.') && tokens[j - 2].kind == Kind::Ident {
        read_back();
        j -= 2;
    }
    Some((j, false))
}

#[cfg(test)]
thread_local! {
    /// Tokens `type_name_start` stepped over backwards and `matching` walked: the tests check
    /// the rewrite and the walks over recursive queries stay linear.
    static READ_BACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn read_back() {
    #[cfg(test)]
    READ_BACK.with(|n| n.set(n.get() + 1));
}

/// The last token of the interval fields after the parameter at `param` (`day`,
/// `day to second(3)`, …), if any.
fn interval_fields_end(tokens: &[Token], param: usize) -> Option<usize> {
    let field =
        |i: usize| tokens.get(i).is_some_and(|t| INTERVAL_FIELDS.iter().any(|f| t.keyword(f)));
    let precision = |i: usize| {
        // second(p)
        let p = tokens[i].keyword("second")
            && tokens.get(i + 1).is_some_and(|t| t.is_char('('))
            && tokens.get(i + 2).is_some_and(|t| t.kind == Kind::Int)
            && tokens.get(i + 3).is_some_and(|t| t.is_char(')'));
        if p {
            i + 3
        } else {
            i
        }
    };
    let mut i = param + 1;
    if !field(i) {
        return None;
    }
    i = precision(i);
    if tokens.get(i + 1).is_some_and(|t| t.keyword("to")) && field(i + 2) {
        i = precision(i + 2);
    }
    Some(i)
}

/// `date $1` → `CAST($1 AS date)`, `interval $2 day` → `CAST($2 AS interval day)`,
/// `timestamp with time zone $3` → `CAST($3 AS timestamp with time zone)`. A type name
/// followed by a parameter is never valid SQL otherwise, so nothing else changes. Also
/// `extract($1 from d)` → `date_part($1, d)`. None when there is nothing to rewrite.
pub fn cast_typed_literals(sql: &str, tokens: &[Token]) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut copied = 0;
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token.kind, Kind::Param(_)) || i == 0 || tokens[i - 1].start < copied {
            continue;
        }
        // `extract(year from d)` is recorded as `extract($1 from d)` (the field is a constant
        // since PostgreSQL 14), which does not parse; date_part takes the field as a value.
        if i >= 2
            && tokens[i - 1].is_char('(')
            && tokens[i - 2].keyword("extract")
            && tokens.get(i + 1).is_some_and(|t| t.keyword("from"))
        {
            if tokens[i - 2].start < copied {
                continue;
            }
            out.push_str(&sql[copied..tokens[i - 2].start]);
            out.push_str(&format!("date_part({},", &sql[token.start..token.end]));
            copied = tokens[i + 1].end;
            continue;
        }
        let Some((first, interval)) = type_name_start(tokens, i - 1) else { continue };
        if tokens[first].start < copied {
            continue;
        }
        let fields = if interval { interval_fields_end(tokens, i) } else { None };
        let type_text = &sql[tokens[first].start..tokens[i - 1].end];
        let fields_text = fields
            .map(|f| format!(" {}", &sql[tokens[i + 1].start..tokens[f].end]))
            .unwrap_or_default();
        out.push_str(&sql[copied..tokens[first].start]);
        out.push_str(&format!(
            "CAST({} AS {type_text}{fields_text})",
            &sql[token.start..token.end]
        ));
        copied = fields.map_or(token.end, |f| tokens[f].end);
    }
    (copied > 0).then(|| {
        out.push_str(&sql[copied..]);
        out
    })
}

/// `$1and` → `$1 and`: the text with a space after the parameter that starts at byte `at`,
/// where PostgreSQL 15+'s scanner raised "trailing junk after parameter" (its error
/// position). pg_stat_statements keeps the spacing of the text it normalizes, so
/// `"é"='e5'and k = 5` is recorded as `"é"=$1and k = $2`, which 14 scanned and 15 does not.
/// None unless a parameter followed by an identifier's first character starts at `at`: the
/// caller rescans after each fix, at most once per `$` in the text.
pub fn separate_parameter(sql: &str, at: usize) -> Option<String> {
    let digits = sql.get(at..)?.strip_prefix('$')?.bytes().take_while(u8::is_ascii_digit).count();
    let end = at + 1 + digits;
    let next = sql[end..].chars().next()?;
    (digits > 0 && (next.is_ascii_alphabetic() || next == '_' || !next.is_ascii()))
        .then(|| format!("{} {}", &sql[..end], &sql[end..]))
}

/// Why an analysis attempt failed.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The SQLSTATE.
    pub code: String,
    /// Byte offset of the error position in the text, when the error gave one.
    pub position: Option<usize>,
    pub message: String,
    /// Parameter types as analysis left them (0 or UNKNOWN: not yet typed).
    pub types: Vec<u32>,
}

/// The most parameters a statement can have: the protocol's Bind message counts them in 16
/// bits. PostgreSQL's parser accepts larger `$n`, but no client can send such a statement.
pub const MAX_PARAMETERS: u32 = 65535;

const AMBIGUOUS_FUNCTION: &str = "42725";
const UNDEFINED_FUNCTION: &str = "42883";
const INDETERMINATE_DATATYPE: &str = "42P18";
const DATATYPE_MISMATCH: &str = "42804";

fn untyped(t: u32) -> bool {
    t == 0 || t == UNKNOWN
}

/// The parameters among `tokens[from..=to]`.
fn params_in(tokens: &[Token], from: usize, to: usize) -> Vec<u32> {
    tokens[from..=to]
        .iter()
        .filter_map(|t| if let Kind::Param(n) = t.kind { Some(n) } else { None })
        .collect()
}

/// Keywords that are values by themselves: `current_date - $1`.
const VALUE_KEYWORDS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "session_user",
    "current_role",
    "user",
    "true",
    "false",
    "null",
];

/// Keywords called like functions: `any(…)`, `coalesce(…)`, `array[…]`.
const CALL_KEYWORDS: &[&str] =
    &["any", "all", "some", "array", "coalesce", "greatest", "least", "nullif"];

fn callee(token: &Token) -> bool {
    token.kind == Kind::Ident || CALL_KEYWORDS.iter().any(|k| token.keyword(k))
}

fn value_keyword(token: &Token) -> bool {
    VALUE_KEYWORDS.iter().any(|k| token.keyword(k))
}

/// An operand next to the operator at `op`: a parameter, a parenthesised group (a
/// subquery too), a call (`f(…)`, `coalesce(…)`, `any(…)`, `array[…]`), a CASE … END, or a
/// keyword value (`current_date`). Returns its token range.
fn operand(tokens: &[Token], op: usize, left: bool) -> Option<(usize, usize)> {
    if left {
        let i = op.checked_sub(1)?;
        let token = &tokens[i];
        match token.kind {
            Kind::Param(_) => Some((i, i)),
            Kind::Char(')') | Kind::Char(']') => {
                let open = matching(tokens, i)?;
                let call = open.checked_sub(1).filter(|f| {
                    callee(&tokens[*f])
                        && (tokens[open].is_char('(') || tokens[*f].keyword("array"))
                });
                Some((call.unwrap_or(open), i))
            }
            _ if token.keyword("end") => Some((matching(tokens, i)?, i)),
            _ if value_keyword(token) => Some((i, i)),
            _ => None,
        }
    } else {
        let i = op + 1;
        let token = tokens.get(i)?;
        let opens = |c: char| tokens.get(i + 1).is_some_and(|t| t.is_char(c));
        match token.kind {
            Kind::Param(_) => Some((i, i)),
            Kind::Char('(') => Some((i, matching(tokens, i)?)),
            _ if token.keyword("case") => Some((i, matching(tokens, i)?)),
            _ if callee(token) && (opens('(') || token.keyword("array") && opens('[')) => {
                Some((i, matching(tokens, i + 1)?))
            }
            _ if value_keyword(token) => Some((i, i)),
            _ => None,
        }
    }
}

/// A comparison's operand: terms joined by arithmetic, `current_date - $1`, `r.depth + $2`.
/// A term is an `operand`, a column reference (its names may be unreserved keywords) or an
/// integer.
struct Chain {
    from: usize,
    to: usize,
    /// The parameters that are terms by themselves, when there are several terms: the
    /// arithmetic gave them their type (`date - unknown` is `date - date`).
    terms: Vec<u32>,
}

fn chain(tokens: &[Token], op: usize, left: bool) -> Option<Chain> {
    let arithmetic = |t: &Token| {
        matches!(t.kind, Kind::Char(c) if "+-*/%^".contains(c)) || t.kind == Kind::Op("||".into())
    };
    // The term next to `at` (the operator before it, or after it on the left).
    let term = |at: usize| -> Option<(usize, usize)> {
        if let Some(range) = operand(tokens, at, left) {
            return Some(range);
        }
        let i = if left { at.checked_sub(1)? } else { at + 1 };
        match tokens.get(i)?.kind {
            Kind::Int => Some((i, i)),
            Kind::Ident | Kind::Keyword(_) => {
                let mut j = i;
                if left {
                    while j >= 2 && tokens[j - 1].is_char('.') && named(&tokens[j - 2]) {
                        j -= 2;
                    }
                    Some((j, i))
                } else {
                    while tokens.get(j + 1).is_some_and(|t| t.is_char('.'))
                        && tokens.get(j + 2).is_some_and(named)
                    {
                        j += 2;
                    }
                    Some((i, j))
                }
            }
            _ => None,
        }
    };
    let (mut from, mut to) = term(op)?;
    let mut ranges = vec![(from, to)];
    loop {
        let next = if left { from.checked_sub(1) } else { Some(to + 1) };
        let Some(next) = next.filter(|n| tokens.get(*n).is_some_and(&arithmetic)) else {
            break;
        };
        let Some((f, t)) = term(next) else { break };
        (from, to) = (from.min(f), to.max(t));
        ranges.push((f, t));
    }
    let terms = if ranges.len() > 1 {
        ranges
            .iter()
            .filter(|(f, t)| f == t)
            .filter_map(|(f, _)| if let Kind::Param(n) = tokens[*f].kind { Some(n) } else { None })
            .collect()
    } else {
        Vec::new()
    };
    Some(Chain { from, to, terms })
}

/// The parameters among `tokens[from..=to]` that stand for values: not those in a CASE's
/// WHEN condition (`case when $1 then $2 else $3 end`: $1 is a boolean).
fn value_params(tokens: &[Token], from: usize, to: usize) -> Vec<u32> {
    // Per CASE entered: whether a WHEN condition is being read.
    let mut conditions: Vec<bool> = Vec::new();
    let mut params = Vec::new();
    for token in &tokens[from..=to] {
        match &token.kind {
            Kind::Keyword(k) if k == "case" => conditions.push(false),
            Kind::Keyword(k) if k == "end" => {
                conditions.pop();
            }
            Kind::Keyword(k) if k == "when" || k == "then" || k == "else" => {
                if let Some(top) = conditions.last_mut() {
                    *top = k == "when";
                }
            }
            Kind::Param(n) if !conditions.contains(&true) => params.push(*n),
            _ => {}
        }
    }
    params
}

/// Whether a token can be a name: an identifier, or a keyword (unreserved ones like `depth`
/// name columns).
fn named(token: &Token) -> bool {
    matches!(token.kind, Kind::Ident | Kind::Keyword(_))
}

/// The name an identifier token stands for: unquoted ones fold to lower case.
fn ident_name(sql: &str, token: &Token) -> String {
    let text = &sql[token.start..token.end.min(sql.len())];
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// The parameters that define the column `tokens[col]` (`r.depth`, `depth`) of a WITH
/// RECURSIVE query: `$1` in `with recursive r(id, depth) as (select id, $1 from …` or in
/// `select id, $1 as depth`. PostgreSQL types that parameter text (a select list gives no
/// context), and `r.depth + $3` in the recursive term then fails.
fn recursive_column_params(sql: &str, tokens: &[Token], col: usize) -> Vec<u32> {
    let column = ident_name(sql, &tokens[col]);
    let qualifier = (col >= 2 && tokens[col - 1].is_char('.') && named(&tokens[col - 2]))
        .then(|| ident_name(sql, &tokens[col - 2]));
    let mut params = Vec::new();
    // Tokens the walks below may pass over in lists and bodies, all together: nested or
    // repeated WITH RECURSIVE cannot make them quadratic.
    // A few nested levels fit; an unbalanced text (never analysed) ends the walks at once.
    let mut budget = 8 * tokens.len();
    let mut skip = |open: usize| {
        let close = matching(tokens, open)?;
        budget = budget.checked_sub(close - open)?;
        Some(close)
    };
    for (r, _) in tokens.iter().enumerate().filter(|(_, t)| t.keyword("recursive")) {
        // name [(columns)] AS [[NOT] MATERIALIZED] (SELECT …) [, name …]
        let mut i = r + 1;
        while let Some(name) = tokens.get(i).filter(|t| named(t)) {
            let name = ident_name(sql, name);
            i += 1;
            let mut columns = None;
            if tokens.get(i).is_some_and(|t| t.is_char('(')) {
                let Some(close) = skip(i) else { return params };
                columns = Some(
                    tokens[i + 1..close]
                        .iter()
                        .filter(|t| named(t))
                        .map(|t| ident_name(sql, t))
                        .collect::<Vec<_>>(),
                );
                i = close + 1;
            }
            if !tokens.get(i).is_some_and(|t| t.keyword("as")) {
                break;
            }
            i += 1;
            while tokens.get(i).is_some_and(|t| t.keyword("not") || t.keyword("materialized")) {
                i += 1;
            }
            if !tokens.get(i).is_some_and(|t| t.is_char('(')) {
                break;
            }
            let Some(close) = skip(i) else { return params };
            if qualifier.as_ref().is_none_or(|q| *q == name) {
                if let Some((from, to)) =
                    select_item(sql, tokens, i + 1, close, columns.as_deref(), &column)
                {
                    params.extend(params_in(tokens, from, to));
                }
            }
            i = close + 1;
            if !tokens.get(i).is_some_and(|t| t.is_char(',')) {
                break;
            }
            i += 1;
        }
    }
    params
}

/// The item of the select list at `tokens[select]` (up to `end`) that is the column named
/// `column`: by position in `columns` when the query names them, else by its alias.
fn select_item(
    sql: &str,
    tokens: &[Token],
    select: usize,
    end: usize,
    columns: Option<&[String]>,
    column: &str,
) -> Option<(usize, usize)> {
    if !tokens.get(select)?.keyword("select") {
        return None;
    }
    const ENDS: &[&str] = &[
        "from",
        "where",
        "group",
        "having",
        "window",
        "union",
        "intersect",
        "except",
        "order",
        "limit",
    ];
    let mut items = Vec::new();
    let mut start = select + 1;
    let mut depth = 0;
    let mut i = start;
    while i < end {
        let token = &tokens[i];
        depth += nesting(token);
        if depth == 0 && (token.is_char(',') || ENDS.iter().any(|k| token.keyword(k))) {
            items.push((start, i.checked_sub(1)?));
            if !token.is_char(',') {
                break;
            }
            start = i + 1;
        }
        i += 1;
    }
    if i == end && start < end {
        items.push((start, end - 1));
    }
    let index = match columns {
        Some(columns) => columns.iter().position(|c| c == column)?,
        None => items.iter().position(|(_, last)| {
            named(&tokens[*last]) && ident_name(sql, &tokens[*last]) == column
        })?,
    };
    items.get(index).copied()
}

/// What to try at one failing construct, in order.
#[derive(Clone, Debug)]
struct Site {
    params: Vec<u32>,
    candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, PartialEq)]
enum Candidate {
    Type(u32),
    /// The type PostgreSQL infers for one parameter standing for the whole expression
    /// `text[start..end]` (the compared column's, the function argument's).
    Probe {
        param: u32,
        start: usize,
        end: usize,
    },
}

fn site(sql: &str, tokens: &[Token], failure: &Failure) -> Option<Site> {
    let at = failure
        .position
        .and_then(|p| tokens.iter().position(|t| t.start <= p && p < t.end.max(t.start + 1)));
    let unknown = |n: &u32| failure.types.get(*n as usize - 1).is_none_or(|t| untyped(*t));
    if failure.code == INDETERMINATE_DATATYPE {
        // `SELECT $1 IS NULL`, a parameter in a select list, a numbering gap: text, or int8
        // where a row count is expected.
        let params: Vec<u32> = match at.map(|i| &tokens[i].kind) {
            Some(Kind::Param(n)) => vec![*n],
            _ => (1..=failure.types.len() as u32).filter(|n| unknown(n)).collect(),
        };
        let counted = at.and_then(|i| i.checked_sub(1)).is_some_and(|p| {
            ["limit", "offset", "first", "next"].iter().any(|k| tokens[p].keyword(k))
        });
        return (!params.is_empty()).then(|| Site {
            params,
            candidates: vec![Candidate::Type(if counted { INT8 } else { TEXT })],
        });
    }
    if ![AMBIGUOUS_FUNCTION, UNDEFINED_FUNCTION, DATATYPE_MISMATCH].contains(&failure.code.as_str())
    {
        return None;
    }
    let i = at?;
    match &tokens[i].kind {
        // A comparison: `k = any(array[$1, $2])`, `d >= current_date - $1`.
        Kind::Char('<' | '>' | '=') => comparison_site(tokens, &compared(tokens, i), failure),
        Kind::Op(op) if ["<>", "!=", "<=", ">="].contains(&op.as_str()) => {
            comparison_site(tokens, &compared(tokens, i), failure)
        }
        // [NOT] BETWEEN reports both its comparisons at its first word: `d between
        // current_date - $1 and current_date`.
        Kind::Keyword(k) if k == "between" || k == "not" => {
            comparison_site(tokens, &between_sides(tokens, i)?, failure)
        }
        // An operator over parameters: `$2 + $3`, `$1 || $2`, `($1 - $2) * $3`.
        Kind::Char(c) if "+-*/%^".contains(*c) => operator_site(sql, tokens, i, &unknown, Some(*c)),
        Kind::Op(op) => operator_site(sql, tokens, i, &unknown, (op == "||").then_some('|')),
        // A function over parameters: `sum($1)`, `sum(CASE … THEN $1 ELSE $2 END)` (a CASE of
        // untyped parameters resolves to text).
        Kind::Ident | Kind::Keyword(_) if tokens.get(i + 1).is_some_and(|t| t.is_char('(')) => {
            let close = matching(tokens, i + 1)?;
            let params: Vec<u32> = params_in(tokens, i + 1, close)
                .into_iter()
                .filter(|n| unknown(n) || failure.types.get(*n as usize - 1) == Some(&TEXT))
                .collect();
            (!params.is_empty()).then(|| Site {
                params,
                candidates: vec![Candidate::Type(NUMERIC), Candidate::Type(TEXT)],
            })
        }
        _ => None,
    }
}

/// A comparison whose operator does not exist for the types its operands got: PostgreSQL
/// typed their parameters text (`array[$1, $2]`, `coalesce($1, $2)`, `(select $1)`, a CASE's
/// results) or by arithmetic (`current_date - $1` is `date - date`). Those parameters take
/// the type the other side gives one parameter standing for the operand (`k = $1`), or the
/// arithmetic's integer or numeric.
/// The two operands of the comparison operator at `op`.
fn compared(tokens: &[Token], op: usize) -> Vec<Chain> {
    [chain(tokens, op, true), chain(tokens, op, false)].into_iter().flatten().collect()
}

/// The operand before the [NOT] BETWEEN at `at` and its two bounds.
fn between_sides(tokens: &[Token], at: usize) -> Option<Vec<Chain>> {
    // NOT BETWEEN reports at NOT.
    let at = if tokens[at].keyword("not") { at + 1 } else { at };
    if !tokens.get(at)?.keyword("between") {
        return None;
    }
    let negated = at.checked_sub(1).is_some_and(|n| tokens[n].keyword("not"));
    let left = chain(tokens, if negated { at - 1 } else { at }, true)?;
    let mut b = at;
    if tokens.get(b + 1).is_some_and(|t| t.keyword("symmetric") || t.keyword("asymmetric")) {
        b += 1;
    }
    let low = chain(tokens, b, false)?;
    if !tokens.get(low.to + 1)?.keyword("and") {
        return None;
    }
    let high = chain(tokens, low.to + 1, false)?;
    Some(vec![left, low, high])
}

/// `sides` are the compared operands; a BETWEEN's bounds are probed one at a time.
fn comparison_site(tokens: &[Token], sides: &[Chain], failure: &Failure) -> Option<Site> {
    let retypable =
        |n: &u32| failure.types.get(*n as usize - 1).is_none_or(|t| untyped(*t) || *t == TEXT);
    let mut params: Vec<u32> = Vec::new();
    let mut with_params = Vec::new();
    for side in sides {
        let before = params.len();
        for n in value_params(tokens, side.from, side.to) {
            if (side.terms.contains(&n) || retypable(&n)) && !params.contains(&n) {
                params.push(n);
            }
        }
        if params.len() > before {
            with_params.push(side);
        }
    }
    let (from, to) = match with_params[..] {
        [] => return None,
        [left, right] if sides.len() == 2 => (left.from, right.to),
        [first, ..] => (first.from, first.to),
    };
    let mut candidates =
        vec![Candidate::Probe { param: params[0], start: tokens[from].start, end: tokens[to].end }];
    if with_params.iter().any(|side| !side.terms.is_empty()) {
        candidates.extend([Candidate::Type(INT4), Candidate::Type(NUMERIC)]);
    }
    candidates.push(Candidate::Type(TEXT));
    Some(Site { params, candidates })
}

fn operator_site(
    sql: &str,
    tokens: &[Token],
    op: usize,
    unknown: &dyn Fn(&u32) -> bool,
    arithmetic: Option<char>,
) -> Option<Site> {
    let left = operand(tokens, op, true);
    let right = operand(tokens, op, false);
    let mut params: Vec<u32> = Vec::new();
    for (from, to) in [left, right].into_iter().flatten() {
        params.extend(params_in(tokens, from, to).into_iter().filter(|n| unknown(n)));
    }
    // `r.depth + $3` where `r.depth` is a recursive query's `$1`, typed text.
    if arithmetic.is_some_and(|c| c != '|') {
        let columns = [
            op.checked_sub(1).filter(|_| left.is_none()),
            Some(op + 1).filter(|_| right.is_none()).map(|i| {
                let mut j = i;
                while tokens.get(j + 1).is_some_and(|t| t.is_char('.'))
                    && tokens.get(j + 2).is_some_and(named)
                {
                    j += 2;
                }
                j
            }),
        ];
        for col in columns.into_iter().flatten() {
            if tokens.get(col).is_some_and(named) {
                for n in recursive_column_params(sql, tokens, col) {
                    if !params.contains(&n) {
                        params.push(n);
                    }
                }
            }
        }
    }
    if params.is_empty() {
        return None;
    }
    let mut candidates = Vec::new();
    // The whole expression replaced by its first parameter: what type does its context give?
    let from = left.map_or(op, |l| l.0);
    let to = right.map_or(op, |r| r.1);
    candidates.push(Candidate::Probe {
        param: params[0],
        start: tokens[from].start,
        end: tokens[to].end,
    });
    match arithmetic {
        Some('|') => candidates.push(Candidate::Type(TEXT)),
        Some(_) => {
            // integer after numeric: `d_date + $5` (pg_stat_statements' `d_date + 5`) has no
            // numeric operator, and `date + integer` is what the literal meant.
            candidates.push(Candidate::Type(NUMERIC));
            candidates.push(Candidate::Type(INT4));
            candidates.push(Candidate::Type(TEXT));
        }
        None => candidates.push(Candidate::Type(TEXT)),
    }
    Some(Site { params, candidates })
}

/// Parameter types (0: left to PostgreSQL) under which `sql` analyses, found by attempts.
/// `attempt(text, types)` analyses `text` with those parameter types (0 = infer) and returns
/// the types of every parameter, or why it failed. The error when no attempt succeeds names
/// what was tried.
pub fn infer_parameter_types(
    sql: &str,
    tokens: &[Token],
    mut attempt: impl FnMut(&str, &[u32]) -> Result<Vec<u32>, Failure>,
) -> Result<Vec<u32>, String> {
    let numbers =
        tokens.iter().filter_map(|t| if let Kind::Param(n) = t.kind { Some(n) } else { None });
    // Checked before `types` is allocated with one entry per number up to the largest.
    if let Some(n) = numbers.clone().find(|n| *n == 0 || *n > MAX_PARAMETERS) {
        return Err(if n == 0 {
            "there is no parameter $0".to_string()
        } else {
            format!("parameter ${n} is above ${MAX_PARAMETERS}: no statement is sent with that many parameters")
        });
    }
    let count = numbers.max().unwrap_or(0) as usize;
    let mut types = vec![0u32; count];
    // Per failing position: its site and the next candidate to try.
    let mut sites: BTreeMap<Option<usize>, (Site, usize)> = BTreeMap::new();
    let mut tried: Vec<String> = Vec::new();
    for _ in 0..4 * count + 8 {
        let failure = match attempt(sql, &types) {
            Ok(found) => return Ok(found),
            Err(failure) => failure,
        };
        let key = failure.position;
        let (site, next) = match sites.entry(key) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let Some(site) = site(sql, tokens, &failure) else {
                    return Err(refusal(sql, &failure, &tried));
                };
                entry.insert((site, 0))
            }
        };
        // Next candidate that gives a type not tried yet at this site.
        let mut chosen = None;
        while *next < site.candidates.len() {
            let candidate = site.candidates[*next].clone();
            *next += 1;
            let typ = match candidate {
                Candidate::Type(t) => Some(t),
                Candidate::Probe { param, start, end } => {
                    let probe = format!("{}${param}{}", &sql[..start], &sql[end..]);
                    let found = match attempt(&probe, &types) {
                        Ok(found) => found,
                        Err(failure) => failure.types,
                    };
                    found.get(param as usize - 1).copied().filter(|t| !untyped(*t))
                }
            };
            if let Some(t) =
                typ.filter(|t| site.params.iter().any(|p| types[*p as usize - 1] != *t))
            {
                chosen = Some(t);
                break;
            }
        }
        let Some(chosen) = chosen else { return Err(refusal(sql, &failure, &tried)) };
        for p in &site.params {
            types[*p as usize - 1] = chosen;
        }
        tried.push(format!(
            "{} as {}",
            site.params.iter().map(|p| format!("${p}")).collect::<Vec<_>>().join(", "),
            type_label(chosen)
        ));
    }
    Err(format!(
        "parameter types not found after {} attempts ({})",
        4 * count + 8,
        tried.join("; ")
    ))
}

fn type_label(oid: u32) -> String {
    match oid {
        TEXT => "text".into(),
        INT8 => "bigint".into(),
        INT4 => "integer".into(),
        NUMERIC => "numeric".into(),
        other => format!("type {other}"),
    }
}

/// The error, where it happened, and which parameter types were tried.
fn refusal(sql: &str, failure: &Failure, tried: &[String]) -> String {
    let mut reason = failure.message.clone();
    if let Some(p) = failure.position.filter(|p| *p < sql.len() && sql.is_char_boundary(*p)) {
        let near: String = sql[p..]
            .chars()
            .take(40)
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        reason.push_str(&format!(" at \"{near}\""));
    }
    if !tried.is_empty() {
        reason.push_str(&format!(" (after typing {})", tried.join("; ")));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small stand-in for the PostgreSQL scanner, enough for these tests (the real one is
    /// used in the server; the #[pg_test]s cover it).
    fn lex(sql: &str) -> Vec<Token> {
        const KEYWORDS: &[&str] = &[
            "select",
            "from",
            "where",
            "and",
            "or",
            "between",
            "interval",
            "timestamp",
            "time",
            "with",
            "without",
            "zone",
            "day",
            "hour",
            "minute",
            "second",
            "month",
            "year",
            "to",
            "double",
            "precision",
            "character",
            "varying",
            "numeric",
            "limit",
            "offset",
            "as",
            "at",
            "case",
            "when",
            "then",
            "else",
            "end",
            "in",
            "not",
            "is",
            "null",
            "int",
            "national",
            "extract",
            "for",
            "any",
            "all",
            "array",
            "coalesce",
            "greatest",
            "least",
            "current_date",
            "recursive",
            "union",
            "join",
            "on",
            "depth",
        ];
        let b = sql.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i] as char;
            let start = i;
            let kind = if c.is_whitespace() {
                i += 1;
                continue;
            } else if c == '\'' {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                Kind::Other
            } else if c == '"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
                Kind::Ident
            } else if c == '$' {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Param(sql[start + 1..i].parse().unwrap())
            } else if c.is_ascii_digit() {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Int
            } else if c.is_ascii_alphabetic() || c == '_' {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = sql[start..i].to_ascii_lowercase();
                if KEYWORDS.contains(&word.as_str()) {
                    Kind::Keyword(word)
                } else {
                    Kind::Ident
                }
            } else if sql[i..].starts_with("||")
                || sql[i..].starts_with("<=")
                || sql[i..].starts_with(">=")
                || sql[i..].starts_with("<>")
                || sql[i..].starts_with("::")
            {
                i += 2;
                if &sql[start..i] == "::" {
                    Kind::Other
                } else {
                    Kind::Op(sql[start..i].to_string())
                }
            } else {
                i += 1;
                Kind::Char(c)
            };
            out.push(Token { kind, start, end: i });
        }
        out
    }

    fn cast(sql: &str) -> String {
        cast_typed_literals(sql, &lex(sql)).unwrap_or_else(|| sql.to_string())
    }

    #[test]
    fn typed_literals_become_casts() {
        assert_eq!(
            cast("select * from lineitem where l_shipdate <= date $1 - interval $2 day"),
            "select * from lineitem where l_shipdate <= CAST($1 AS date) - CAST($2 AS interval day)"
        );
        assert_eq!(
            cast("where o_orderdate < date $1 + interval $2"),
            "where o_orderdate < CAST($1 AS date) + CAST($2 AS interval)"
        );
        assert_eq!(
            cast("select TIMESTAMP WITH TIME ZONE $3"),
            "select CAST($3 AS TIMESTAMP WITH TIME ZONE)"
        );
        assert_eq!(
            cast("select timestamp(3) without time zone $1"),
            "select CAST($1 AS timestamp(3) without time zone)"
        );
        assert_eq!(
            cast("select int4 $1, pg_catalog.date $2"),
            "select CAST($1 AS int4), CAST($2 AS pg_catalog.date)"
        );
        assert_eq!(cast("select numeric(10, 2) $1"), "select CAST($1 AS numeric(10, 2))");
        assert_eq!(cast("select double precision $1"), "select CAST($1 AS double precision)");
        assert_eq!(
            cast("select character varying(4) $1"),
            "select CAST($1 AS character varying(4))"
        );
        assert_eq!(
            cast("select interval $1 day to second(3) from t"),
            "select CAST($1 AS interval day to second(3)) from t"
        );
        assert_eq!(
            cast("select interval $1 hour to minute"),
            "select CAST($1 AS interval hour to minute)"
        );
        assert_eq!(cast("select interval(2) $1"), "select CAST($1 AS interval(2))");
        assert_eq!(cast("select \"MyType\" $1"), "select CAST($1 AS \"MyType\")");
        assert_eq!(
            cast("select extract($1 from o_orderdate) as y from orders where d > date $2"),
            "select date_part($1, o_orderdate) as y from orders where d > CAST($2 AS date)"
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        for sql in [
            "select \"date $1\" from t where s = 'date $1' and d = $1",
            "select $1 date from t",
            "select ts at time zone $1 from t",
            "select * from t limit $1 offset $2",
            "select f(x) $1",
            "select * from t where a between $1 and $2 + $3",
            "select CAST($1 AS date)",
            "select extract(year from d), substring(s from $1 for $2)",
        ] {
            assert_eq!(cast_typed_literals(sql, &lex(sql)), None, "{sql}");
        }
    }

    /// `((((1)$1)$1)$1…`, 1 MB: each `)` before a parameter once walked back to its `(`.
    #[test]
    fn typmods_are_read_back_in_linear_steps() {
        let n = 250_000;
        let sql = format!("select {}1{}", "(".repeat(n), ")$1".repeat(n));
        assert!(sql.len() > 1_000_000);
        let tokens = lex(&sql);
        READ_BACK.with(|r| r.set(0));
        assert_eq!(cast_typed_literals(&sql, &tokens), None);
        let steps = READ_BACK.with(|r| r.get());
        assert!(steps <= tokens.len(), "{steps} steps back over {} tokens", tokens.len());
        // Long typmod lists and qualified names are still read, once each.
        let sql = format!("select numeric({}1) $1, {}t $2", "1, ".repeat(n), "s.".repeat(n));
        let tokens = lex(&sql);
        READ_BACK.with(|r| r.set(0));
        let cast = cast_typed_literals(&sql, &tokens).unwrap();
        assert!(cast.starts_with("select CAST($1 AS numeric(1, 1, "), "{}", &cast[..40]);
        assert!(cast.ends_with("s.s.t)"), "{}", &cast[cast.len() - 40..]);
        let steps = READ_BACK.with(|r| r.get());
        assert!(steps <= tokens.len(), "{steps} steps back over {} tokens", tokens.len());
    }

    /// `$2147483647` once allocated 8 GiB of parameter types; more than 65535 parameters
    /// cannot be sent, so the statement is refused before anything is analysed.
    #[test]
    fn parameter_numbers_beyond_what_a_client_can_send_are_refused_unanalysed() {
        for (sql, reason) in [
            (
                "select 1 from t where k = $2147483647",
                "parameter $2147483647 is above $65535: no statement is sent with that many parameters",
            ),
            (
                "select 1 from t where k = $1 and j = $70000",
                "parameter $70000 is above $65535: no statement is sent with that many parameters",
            ),
            ("select 1 from t where k = $0", "there is no parameter $0"),
        ] {
            let err = infer_parameter_types(sql, &lex(sql), |text, _| panic!("{text} analysed"))
                .unwrap_err();
            assert_eq!(err, reason);
        }
        // The limit itself is planned.
        let sql = "select 1 from t where k = $65535";
        let types = infer_parameter_types(sql, &lex(sql), |_, types| {
            assert_eq!(types.len(), 65535);
            Ok(vec![INT4; 65535])
        })
        .unwrap();
        assert_eq!(types.len(), 65535);
    }

    /// Only a parameter glued to an identifier at the given byte offset is separated.
    #[test]
    fn a_parameter_glued_to_a_word_is_separated_where_the_scanner_said() {
        let sql = "select k from weird where \"é\"=$1and k=$2";
        let at = sql.find("$1").unwrap();
        assert_eq!(
            separate_parameter(sql, at).as_deref(),
            Some("select k from weird where \"é\"=$1 and k=$2")
        );
        assert_eq!(separate_parameter("select $12_x", 7).as_deref(), Some("select $12 _x"));
        assert_eq!(separate_parameter("select $3é", 7).as_deref(), Some("select $3 é"));
        for (sql, at) in [
            (sql, at - 1),                  // not at the `$`
            (sql, sql.find("$2").unwrap()), // `$2` ends the text
            ("select $1 and", 7),           // already separated
            ("select $x", 7),               // no number
            ("select $1+1", 7),             // an operator may follow
            ("select 'é'", 9),              // inside a character
            ("select 1", 40),               // past the end
        ] {
            assert_eq!(separate_parameter(sql, at), None, "{sql} at {at}");
        }
    }

    /// A fake analyser: `rules` maps a text to the outcome for given types.
    fn failure(code: &str, sql: &str, at: &str, types: &[u32]) -> Failure {
        Failure {
            code: code.into(),
            position: sql.find(at),
            message: format!("{code} at {at}"),
            types: types.to_vec(),
        }
    }

    #[test]
    fn an_ambiguous_operator_takes_the_type_its_context_gives_one_parameter() {
        let sql = "select 1 from d where m between $1 and $2 + $3";
        let mut seen = Vec::new();
        let types = infer_parameter_types(sql, &lex(sql), |text, types| {
            seen.push((text.to_string(), types.to_vec()));
            if text == "select 1 from d where m between $1 and $2" {
                return Ok(vec![INT4, INT4]);
            }
            match types {
                [_, INT4, INT4] => Ok(vec![INT4, INT4, INT4]),
                _ => Err(failure(AMBIGUOUS_FUNCTION, sql, "+", &[INT4, UNKNOWN, UNKNOWN])),
            }
        })
        .unwrap();
        assert_eq!(types, vec![INT4, INT4, INT4]);
        assert_eq!(
            seen[1].0, "select 1 from d where m between $1 and $2",
            "the probe replaces `$2 + $3` by `$2`"
        );
    }

    #[test]
    fn without_context_arithmetic_is_numeric_and_concatenation_text() {
        let sql = "select $1 - $2 from d";
        let types = infer_parameter_types(sql, &lex(sql), |text, types| match (text, types) {
            (_, [NUMERIC, NUMERIC]) => Ok(vec![NUMERIC, NUMERIC]),
            // The probe `select $1 from d` types $1 as text; text - text does not exist.
            ("select $1 from d", _) => Ok(vec![TEXT]),
            (_, [TEXT, TEXT]) => Err(failure(UNDEFINED_FUNCTION, sql, "-", &[TEXT, TEXT])),
            _ => Err(failure(AMBIGUOUS_FUNCTION, sql, "-", &[UNKNOWN, UNKNOWN])),
        })
        .unwrap();
        assert_eq!(types, vec![NUMERIC, NUMERIC]);

        let sql = "select 1 from u where lower(email) = lower($1 || $2)";
        let types = infer_parameter_types(sql, &lex(sql), |text, types| match (text, types) {
            (_, [TEXT, TEXT]) => Ok(vec![TEXT, TEXT]),
            (t, _) if t.contains("lower($1)") => {
                Err(failure(AMBIGUOUS_FUNCTION, t, "lower($1)", &[UNKNOWN]))
            }
            _ => Err(failure(AMBIGUOUS_FUNCTION, sql, "||", &[UNKNOWN, UNKNOWN])),
        })
        .unwrap();
        assert_eq!(types, vec![TEXT, TEXT]);
    }

    #[test]
    fn date_arithmetic_with_a_parameter_is_integer() {
        // TPC-DS q72's `d1.d_date + 5` as pg_stat_statements records it: no `date + numeric`.
        let sql = "select 1 from d where d3 > d1 + $1";
        let types = infer_parameter_types(sql, &lex(sql), |_, types| match types {
            [0] => Err(failure(UNDEFINED_FUNCTION, sql, "+", &[UNKNOWN])),
            [NUMERIC] | [TEXT] => Err(failure(UNDEFINED_FUNCTION, sql, "+", types)),
            [INT4] => Ok(vec![INT4]),
            other => panic!("unexpected attempt {other:?}"),
        })
        .unwrap();
        assert_eq!(types, vec![INT4]);
    }

    #[test]
    fn aggregates_over_parameters_are_numeric_and_row_counts_bigint() {
        let sql = "select sum(case when m > $1 then $2 else $3 end) from d limit $4";
        let types = infer_parameter_types(sql, &lex(sql), |_, types| match types {
            [0, 0, 0, 0] => Err(failure(UNDEFINED_FUNCTION, sql, "sum", &[INT4, TEXT, TEXT, 0])),
            [0, NUMERIC, NUMERIC, 0] => {
                Err(failure(INDETERMINATE_DATATYPE, sql, "$4", &[INT4, NUMERIC, NUMERIC, UNKNOWN]))
            }
            [0, NUMERIC, NUMERIC, INT8] => Ok(vec![INT4, NUMERIC, NUMERIC, INT8]),
            other => panic!("unexpected attempt {other:?}"),
        })
        .unwrap();
        assert_eq!(
            types,
            vec![INT4, NUMERIC, NUMERIC, INT8],
            "$1 keeps the type of the column it is compared with"
        );
    }

    /// How PostgreSQL analyses `sql` (checked with PREPARE on 15): with parameter types
    /// `want` it succeeds with `found`; otherwise it fails with "operator does not exist" at
    /// `at`, its parameters typed `given` unless preset; `probe` (the text with the operand
    /// replaced by one parameter) types that parameter `probe_type`.
    struct Shape {
        sql: &'static str,
        at: &'static str,
        given: &'static [u32],
        probe: Option<(&'static str, u32)>,
        want: &'static [u32],
        found: &'static [u32],
    }

    fn infer(shape: &Shape) -> Result<Vec<u32>, String> {
        infer_parameter_types(shape.sql, &lex(shape.sql), |text, types| {
            if let Some((probe, typ)) = shape.probe.filter(|(probe, _)| *probe == text) {
                let _ = probe;
                return Ok(vec![typ; 4]);
            }
            if text != shape.sql {
                return Err(failure("42601", text, "$", &[]));
            }
            if types == shape.want {
                return Ok(shape.found.to_vec());
            }
            let given: Vec<u32> =
                shape.given.iter().zip(types).map(|(g, t)| if *t == 0 { *g } else { *t }).collect();
            Err(failure(UNDEFINED_FUNCTION, shape.sql, shape.at, &given))
        })
    }

    const BOOL: u32 = 16;
    const DATE: u32 = 1082;

    /// pg_stat_statements' `k = any(array[$1, $2])`, `current_date - $1`, `coalesce($1, $2)`,
    /// `(select $1)`, a CASE's results, a recursive query's `r.depth + $3`: PostgreSQL types
    /// their parameters text or by arithmetic, and the comparison then has no operator.
    #[test]
    fn parameters_inside_a_compared_operand_take_the_other_sides_type() {
        let compared = |sql: &'static str, at: &'static str, given: &'static [u32], probe| Shape {
            sql,
            at,
            given,
            probe: Some((probe, INT4)),
            want: &[INT4, INT4, INT4][..given.len()],
            found: &[INT4, INT4, INT4][..given.len()],
        };
        let shapes = [
            compared(
                "select * from t where k = any(array[$1,$2,$3])",
                "= any",
                &[TEXT, TEXT, TEXT],
                "select * from t where k = $1",
            ),
            compared(
                "select * from t where k <> all(array[$1,$2])",
                "<> all",
                &[TEXT, TEXT],
                "select * from t where k <> $1",
            ),
            // `s = $3` is text from its column, not retyped.
            Shape {
                sql: "select * from t where id = coalesce($1, $2) and s = $3",
                at: "= coalesce",
                given: &[TEXT, TEXT, TEXT],
                probe: Some(("select * from t where id = $1 and s = $3", INT4)),
                want: &[INT4, INT4, 0],
                found: &[INT4, INT4, TEXT],
            },
            compared(
                "select * from t where id = greatest($1,$2)",
                "= greatest",
                &[TEXT, TEXT],
                "select * from t where id = $1",
            ),
            compared(
                "select * from t where id = (select $1)",
                "= (",
                &[TEXT],
                "select * from t where id = $1",
            ),
            compared(
                "select * from t where least($1, $2) = id",
                "= id",
                &[TEXT, TEXT],
                "select * from t where $1 = id",
            ),
            // Only the results are retyped: the WHEN condition stays boolean.
            Shape {
                sql: "select * from t where k = case when $1 then $2 else $3 end",
                at: "= case",
                given: &[BOOL, TEXT, TEXT],
                probe: Some(("select * from t where k = $2", INT4)),
                want: &[0, INT4, INT4],
                found: &[BOOL, INT4, INT4],
            },
            // `date - unknown` resolves as `date - date`, an integer; the probe's date fails
            // again, integer is what the literal meant.
            Shape {
                sql: "select * from t where d >= current_date - $1",
                at: ">=",
                given: &[DATE],
                probe: Some(("select * from t where d >= $1", DATE)),
                want: &[INT4],
                found: &[INT4],
            },
            // BETWEEN reports both comparisons at BETWEEN; its bounds are probed one at a time.
            Shape {
                sql: "select * from t where d between current_date - $1 and current_date",
                at: "between",
                given: &[DATE],
                probe: Some(("select * from t where d between $1 and current_date", DATE)),
                want: &[INT4],
                found: &[INT4],
            },
            Shape {
                sql: "select * from t where k not between coalesce($1, $2) and $3",
                at: "not between",
                given: &[TEXT, TEXT, 0],
                probe: Some(("select * from t where k not between $1 and $3", INT4)),
                want: &[INT4, INT4, INT4],
                found: &[INT4, INT4, INT4],
            },
            // The recursive query's `$1` is the column `r.depth + $3` adds to.
            Shape {
                sql: "with recursive r(id, depth) as (select id, $1 from t where id = $2 union all select t.id, r.depth + $3 from t join r on t.parent = r.id where r.depth < $4) select * from r",
                at: "+ $3",
                given: &[TEXT, INT4, 0, 0],
                probe: None,
                want: &[NUMERIC, 0, NUMERIC, 0],
                found: &[NUMERIC, INT4, NUMERIC, NUMERIC],
            },
            Shape {
                sql: "with recursive r as (select id, $1 as depth from t where id = $2 union all select t.id, $3 + depth from t join r on t.parent = r.id) select * from r",
                at: "+ depth",
                given: &[TEXT, INT4, 0],
                probe: None,
                want: &[NUMERIC, 0, NUMERIC],
                found: &[NUMERIC, INT4, NUMERIC],
            },
        ];
        for shape in &shapes {
            assert_eq!(infer(shape).as_deref(), Ok(shape.found), "{}", shape.sql);
        }
    }

    /// A recursive query's column is found by its position in the column list or by its
    /// alias, in the named query only.
    #[test]
    fn a_recursive_querys_column_is_the_item_of_its_first_select_list() {
        let params = |sql: &str, column: &str| {
            let tokens = lex(sql);
            let at = tokens.iter().rposition(|t| &sql[t.start..t.end] == column).unwrap();
            recursive_column_params(sql, &tokens, at)
        };
        let sql = "with recursive a(x, depth) as (select $1, $2 from t union all select a.x, a.depth + $3 from a), b as (select $4 as depth) select a.depth from a";
        assert_eq!(params(sql, "depth"), vec![2]);
        let sql = "with recursive a as (select $1 as x, f($2, $3) \"Depth\" from t union all select 1) select a.\"Depth\" from a";
        assert_eq!(params(sql, "\"Depth\""), vec![2, 3]);
        // Nested recursive queries: each walk's lists and bodies are counted against one
        // budget of the text's length (it gives up rather than walk them again).
        let n = 20_000;
        let sql = format!(
            "{}select 1{} select r.depth + $1",
            "with recursive r as (".repeat(n),
            ")".repeat(n)
        );
        let tokens = lex(&sql);
        let at = tokens.len() - 3;
        READ_BACK.with(|r| r.set(0));
        assert_eq!(recursive_column_params(&sql, &tokens, at), Vec::<u32>::new());
        let steps = READ_BACK.with(|r| r.get());
        assert!(steps <= 10 * tokens.len(), "{steps} steps over {} tokens", tokens.len());
        let sql = "with recursive a as (select $1 as x from t) select b.x from a, b";
        assert_eq!(params(sql, "x"), Vec::<u32>::new(), "b is not the recursive query");
    }

    #[test]
    fn what_cannot_be_fixed_says_why_and_where() {
        let sql = "select 1 from d where x = $1";
        let err = infer_parameter_types(sql, &lex(sql), |_, _| {
            Err(failure("42703", sql, "x =", &[UNKNOWN]))
        })
        .unwrap_err();
        assert_eq!(err, "42703 at x = at \"x = $1\"");
        // Every candidate fails: the refusal lists what was tried.
        let sql = "select $1 + $2";
        let err = infer_parameter_types(sql, &lex(sql), |text, types| {
            Err(failure(if text == sql { AMBIGUOUS_FUNCTION } else { "42601" }, sql, "+", types))
        })
        .unwrap_err();
        assert!(
            err.contains("after typing $1, $2 as numeric; $1, $2 as integer; $1, $2 as text"),
            "{err}"
        );
    }
}
