//! PostgreSQL's double-quoted names, `""` inside the quotes standing for one `"`.

use std::iter::Peekable;
use std::str::Chars;

/// Reads a quoted name from just after its opening quote through its closing one; Err with
/// what was read when the text ends first.
pub fn read_quoted(chars: &mut Peekable<Chars<'_>>) -> Result<String, String> {
    let mut name = String::new();
    loop {
        match chars.next() {
            Some('"') if chars.peek() == Some(&'"') => {
                chars.next();
                name.push('"');
            }
            Some('"') => return Ok(name),
            Some(c) => name.push(c),
            None => return Err(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_quoted;

    #[test]
    fn reads_through_the_closing_quote_and_undoubles_quotes() {
        let mut chars = r#"we""ird".rest"#.chars().peekable();
        assert_eq!(read_quoted(&mut chars), Ok("we\"ird".to_string()));
        assert_eq!(chars.collect::<String>(), ".rest");
        assert_eq!(read_quoted(&mut r#"open"#.chars().peekable()), Err("open".to_string()));
        assert_eq!(read_quoted(&mut r#"end"""#.chars().peekable()), Err("end\"".to_string()));
    }
}
