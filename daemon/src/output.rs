//! Rendering rows for people (tables) or programs (JSON).

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::{Map, Value};

pub enum Style {
    Json,
    Table { wide: bool },
}

/// Longest cell shown in a table unless `--wide`.
const NARROW_CELL: usize = 80;

pub fn render(rows: &[Map<String, Value>], style: Style, empty_message: &str) -> String {
    match style {
        Style::Json => serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into()),
        Style::Table { wide } => {
            if rows.is_empty() {
                return empty_message.to_string();
            }
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_content_arrangement(if wide {
                ContentArrangement::Disabled
            } else {
                ContentArrangement::Dynamic
            });
            table.set_header(rows[0].keys());
            for row in rows {
                table.add_row(row.values().map(|v| cell(v, wide)));
            }
            format!("{table}\n({} row{})", rows.len(), if rows.len() == 1 { "" } else { "s" })
        }
    }
}

/// `text` safe to print on a terminal: control characters other than newline and tab, and
/// the bidirectional overrides, become U+FFFD. Any role can put them in a statement text or a
/// quoted name, and escape sequences would rewrite the DBA's screen, title or clipboard.
pub fn printable(text: &str) -> String {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if text.chars().any(unsafe_char) {
        text.chars().map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c }).collect()
    } else {
        text.to_string()
    }
}

/// `text` printable (`printable`) and on one line: newlines, tabs and the Unicode line and
/// paragraph separators become spaces. For a line that must not be forged, such as a progress
/// line: a table named `x\n[2/2] reindex public.orders: ok` would otherwise print two.
pub fn one_line(text: &str) -> String {
    let breaks = |c: char| matches!(c, '\n' | '\t' | '\u{2028}' | '\u{2029}');
    let shown = printable(text);
    if shown.contains(breaks) {
        shown.chars().map(|c| if breaks(c) { ' ' } else { c }).collect()
    } else {
        shown
    }
}

fn cell(value: &Value, wide: bool) -> String {
    let text = printable(&match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if wide {
        return text;
    }
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > NARROW_CELL {
        format!("{}…", flat.chars().take(NARROW_CELL - 1).collect::<String>())
    } else {
        flat
    }
}

/// Asks `question` on the terminal (stderr, answer from stdin); only "y" or "yes" is a yes.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    use anyhow::Context;
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("cannot read the answer")?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_escapes_and_bidi_overrides_are_not_printed() {
        let hostile = "SELECT 1 /* \u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J \u{202E}gnp.exe */\n\tFROM t";
        let shown = printable(hostile);
        assert!(
            !shown.chars().any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202E}'),
            "{shown:?}"
        );
        assert!(shown.contains("\n\tFROM t") && shown.contains("SELECT 1"), "{shown:?}");
        let row: Map<String, Value> =
            [("query".to_string(), Value::String(hostile.into()))].into_iter().collect();
        for wide in [false, true] {
            assert!(
                !render(std::slice::from_ref(&row), Style::Table { wide }, "").contains('\u{1b}')
            );
        }
    }

    #[test]
    fn one_line_output_has_no_line_breaks_and_no_escapes() {
        let forged = "x\n[2/2] reindex public.orders: ok in 0s\r\t\u{2028}y\u{1b}[2J\u{202E}";
        let shown = one_line(forged);
        assert_eq!(
            shown, "x [2/2] reindex public.orders: ok in 0s\u{FFFD}  y\u{FFFD}[2J\u{FFFD}",
            "{shown:?}"
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(one_line("plain text"), "plain text");
    }

    fn rows() -> Vec<Map<String, Value>> {
        let row = json!({"calls": 3, "query": format!("select  {}\n from t", "x, ".repeat(40)), "hit": null});
        vec![row.as_object().unwrap().clone()]
    }

    #[test]
    fn table_keeps_column_order_and_shortens_text() {
        let out = render(&rows(), Style::Table { wide: false }, "none");
        let header = out.lines().nth(1).unwrap();
        assert!(header.find("calls").unwrap() < header.find("query").unwrap());
        assert!(out.contains('…'));
        assert!(out.ends_with("(1 row)"));
    }

    #[test]
    fn empty_tables_say_so_and_json_is_an_array() {
        assert_eq!(render(&[], Style::Table { wide: false }, "nothing here"), "nothing here");
        assert_eq!(render(&[], Style::Json, "x"), "[]");
        let parsed: Value = serde_json::from_str(&render(&rows(), Style::Json, "")).unwrap();
        assert_eq!(parsed[0]["calls"], 3);
    }
}
