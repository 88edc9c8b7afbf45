//! Health: what vacuum, bloat and the server's settings need, and the maintenance plan the
//! daemon runs. Logic on plain structs (`vacuum`; `bloat`, `btree` and `table_bloat`; `config`
//! and the host readers of `host`; `plan`); the extension's `health` module reads the inputs
//! through SPI and holds the SQL entry points.

pub mod bloat;
pub mod btree;
pub mod config;
pub mod host;
pub mod plan;
pub mod table_bloat;
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
