//! `pitstop.cache_stats()` as the cache tests read it: by column name, so a new column never
//! shifts the others.

/// One reading of `pitstop.cache_stats()`.
#[derive(Debug, Clone)]
pub struct CacheStats {
    pub hits: i64,
    pub misses: i64,
    pub fills: i64,
    pub bypasses: i64,
    pub invalidations: i64,
    /// Lookups that found an entry no longer fresh (`stale`, formerly `expired`).
    pub stale: i64,
    pub evictions: i64,
    pub entries: i64,
    pub bytes_used: i64,
    pub bytes_configured: i64,
    /// Calls served under pitstop.cache_replica_ttl_only (0 from builds without it).
    pub ttl_only: i64,
    pub reasons: serde_json::Value,
}

impl CacheStats {
    /// The count of one bypass reason; panics when the reason is unknown.
    pub fn reason(&self, name: &str) -> i64 {
        self.reasons
            .get(name)
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| panic!("no bypass reason {name}: {}", self.reasons))
    }
}

pub fn cache_stats(c: &mut postgres::Client) -> CacheStats {
    let text: String = c
        .query_one("SELECT to_jsonb(s)::text FROM pitstop.cache_stats() AS s", &[])
        .unwrap()
        .get(0);
    let row: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |name: &str| row.get(name).and_then(|v| v.as_i64());
    let get =
        |name: &str| field(name).unwrap_or_else(|| panic!("cache_stats() has no {name}: {row}"));
    CacheStats {
        hits: get("hits"),
        misses: get("misses"),
        fills: get("fills"),
        bypasses: get("bypasses"),
        invalidations: get("invalidations"),
        stale: field("stale")
            .or_else(|| field("expired"))
            .unwrap_or_else(|| panic!("no stale/expired: {row}")),
        evictions: get("evictions"),
        entries: get("entries"),
        bytes_used: get("bytes_used"),
        bytes_configured: get("bytes_configured"),
        ttl_only: field("ttl_only_calls").unwrap_or(0),
        reasons: row["bypass_reasons"].clone(),
    }
}
