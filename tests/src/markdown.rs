//! Reading the repository's markdown pages in tests: files by their path from the root, code
//! spans, table rows and fenced blocks.

use std::path::Path;

/// The file at `path` from the repository's root, if it can be read.
pub fn read_repo_file(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).ok()
}

/// The file at `path` from the repository's root; panics when it cannot be read.
pub fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The identifier each code span of `text` starts with: `cached(query text, …)` → `cached`,
/// `pitstop.cache_size` → `pitstop.cache_size`, `pitstop_build_info{version}` →
/// `pitstop_build_info`.
pub fn span_names(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| {
            span.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The markdown lines of `doc`, with whether each is inside a fenced code block.
pub fn lines_outside_code(doc: &str) -> Vec<(bool, &str)> {
    let mut fenced = false;
    doc.lines()
        .map(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return (true, line);
            }
            (fenced, line)
        })
        .collect()
}

/// A table row of a markdown page (not its `|---|` line).
pub fn is_table_row(line: &str) -> bool {
    line.starts_with("| ") && !line.starts_with("|---")
}

/// The first cell of a table row, as written.
pub fn first_cell(row: &str) -> &str {
    row.split('|').nth(1).unwrap_or("")
}

/// The cells of a table row, trimmed.
pub fn cells(row: &str) -> Vec<&str> {
    row.split('|').skip(1).map(str::trim).collect()
}
