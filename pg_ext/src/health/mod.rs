//! Health: what vacuum, bloat and the server's settings need, and the maintenance plan the
//! daemon runs. Logic on plain structs (`vacuum`, `bloat`, `config`, `plan`, and the parsers of
//! `host`), unit-tested without Postgres; `read` gathers the inputs through SPI and `sql` holds
//! the thin SQL entry points that the views of `sql/schema/health.sql` sit on.

pub mod bloat;
pub mod config;
pub mod host;
pub mod plan;
mod read;
pub mod sql;
pub mod vacuum;

/// Bytes for people: "512.0 MB", "15.6 GB" (powers of 1024, as pg_size_pretty).
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_like_pg_size_pretty() {
        assert_eq!(human_bytes(512.0), "512 bytes");
        assert_eq!(human_bytes(1536.0), "1.5 kB");
        assert_eq!(human_bytes(16.0 * 1024.0 * 1024.0 * 1024.0), "16.0 GB");
    }
}
