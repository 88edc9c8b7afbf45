//! PostgreSQL's own SQL scanner (the one the parser and pg_stat_statements use), for the
//! advisor's rewriting of normalized statements: token kinds and byte offsets.

use pgrx::pg_sys;
use pitstop_core::advisor::normalized::{self, Kind, Token};
use std::ffi::CStr;
use std::sync::OnceLock;

/// Token codes differ between major versions (they come from the grammar): the scanner is
/// asked once what it returns for each kind we need. Every keyword is given one code of ours
/// through the keyword table passed to `scanner_init`, with its name in `yylval.keyword`.
struct Codes {
    ident: i32,
    param: i32,
    iconst: i32,
    op: i32,
    /// `<=`, `>=`, `<>`/`!=`: operators with their own codes.
    comparisons: [i32; 3],
}

/// Above every grammar token code (a few hundred).
const KEYWORD: u16 = 0xFFF0;

static CODES: OnceLock<Codes> = OnceLock::new();

/// Raw (code, start, value) triples of `sql`, the value read as the code's kind requires.
/// Errors (an unterminated quote) are raised as the parser would raise them.
fn lex(
    sql: &std::ffi::CString,
    keyword_tokens: &[u16],
    mut each: impl FnMut(i32, usize, pg_sys::core_YYSTYPE),
) {
    // SAFETY: `sql` is NUL-terminated and outlives the scanner; `keyword_tokens` has one entry
    // per keyword of ScanKeywords (checked by the caller); the scanner's memory is freed by
    // scanner_finish, or with the current memory context if it raises an error. pgrx's
    // bindings already guard each call (an ERROR comes back as a panic): a second
    // pg_guard_ffi_boundary around them would abort the backend on that panic.
    unsafe {
        let mut extra: pg_sys::core_yy_extra_type = std::mem::zeroed();
        let scanner = pg_sys::scanner_init(
            sql.as_ptr(),
            &mut extra,
            &raw const pg_sys::ScanKeywords,
            keyword_tokens.as_ptr(),
        );
        loop {
            let mut value = pg_sys::core_YYSTYPE::default();
            let mut location: std::ffi::c_int = 0;
            let code = pg_sys::core_yylex(&mut value, &mut location, scanner);
            if code == 0 {
                break;
            }
            each(code, location.max(0) as usize, value);
        }
        pg_sys::scanner_finish(scanner);
    }
}

fn keyword_tokens() -> Vec<u16> {
    // SAFETY: ScanKeywords is a constant of the server.
    let count = unsafe { pg_sys::ScanKeywords.num_keywords };
    vec![KEYWORD; count.max(0) as usize]
}

fn codes(keyword_tokens: &[u16]) -> &'static Codes {
    CODES.get_or_init(|| {
        let mut seen = Vec::new();
        lex(&c"x $1 1 || <= >= <>".into(), keyword_tokens, |code, _, _| seen.push(code));
        Codes {
            ident: seen[0],
            param: seen[1],
            iconst: seen[2],
            op: seen[3],
            comparisons: [seen[4], seen[5], seen[6]],
        }
    })
}

/// The tokens of `sql`, with their kinds and byte offsets.
pub fn tokens(sql: &str) -> Result<Vec<Token>, String> {
    let c_sql = crate::pg::parse::c_text(sql)
        .ok_or_else(|| "the statement contains a NUL byte".to_string())?;
    let keyword_tokens = keyword_tokens();
    let codes = codes(&keyword_tokens);
    let mut raw: Vec<(Kind, usize)> = Vec::new();
    lex(&c_sql, &keyword_tokens, |code, start, value| {
        // SAFETY: the union member read is the one the scanner sets for that code (scan.l):
        // keyword for keywords, str for operators, ival for parameters.
        let kind = unsafe {
            match code {
                c if c == i32::from(KEYWORD) => Kind::Keyword(
                    CStr::from_ptr(value.keyword).to_string_lossy().to_ascii_lowercase(),
                ),
                c if c == codes.ident => Kind::Ident,
                c if c == codes.param => Kind::Param(value.ival.max(0) as u32),
                c if c == codes.iconst => Kind::Int,
                c if c == codes.op => {
                    Kind::Op(CStr::from_ptr(value.str_).to_string_lossy().into_owned())
                }
                c if codes.comparisons.contains(&c) => {
                    Kind::Op(sql.get(start..start + 2).unwrap_or("").to_string())
                }
                c if (1..128).contains(&c) => Kind::Char(c as u8 as char),
                _ => Kind::Other,
            }
        };
        raw.push((kind, start));
    });
    let starts: Vec<usize> = raw.iter().map(|(_, s)| *s).skip(1).chain([sql.len()]).collect();
    Ok(raw
        .into_iter()
        .zip(starts)
        .map(|((kind, start), next)| {
            let end = normalized::token_end(sql, &kind, start, next);
            Token { kind, start, end }
        })
        .collect())
}
