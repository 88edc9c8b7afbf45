//! Cache keys: everything that can change a query's answer, in one byte string (rule 2 of
//! the correctness rules). Compared in full on lookup, so a hash collision never returns
//! another query's rows.

/// Whether the caller wants rows (`cached`) or one jsonb array (`cached_json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Rows = 1,
    Json = 2,
}

pub struct KeyParts<'a> {
    pub flavor: Flavor,
    pub dbid: u32,
    pub roleid: u32,
    pub query: &'a str,
    pub params: &'a [Option<&'a str>],
    /// The settings that change the answer or its printed form (`pg::guc::output_settings`).
    pub settings: &'a [&'a [u8]],
    /// Served by TTL only (replica situations), with this ttl in microseconds: such entries
    /// are shared only by callers accepting the same staleness.
    pub ttl_only: Option<i64>,
}

#[inline]
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The key bytes; the query text comes first so it can be shown without the rest. Sized by
/// the caller's input, so its one allocation may fail (the caller raises an ERROR).
#[inline]
pub fn encode(parts: &KeyParts<'_>) -> Result<Vec<u8>, std::collections::TryReserveError> {
    let settings: usize = parts.settings.iter().map(|s| 4 + s.len()).sum();
    let params: usize = parts.params.iter().map(|p| 1 + p.map_or(0, |p| 4 + p.len())).sum();
    let ttl = if parts.ttl_only.is_some() { 9 } else { 1 };
    let mut out = Vec::new();
    out.try_reserve_exact(4 + parts.query.len() + 13 + settings + ttl + 4 + params)?;
    put(&mut out, parts.query.as_bytes());
    out.push(parts.flavor as u8);
    out.extend_from_slice(&parts.dbid.to_le_bytes());
    out.extend_from_slice(&parts.roleid.to_le_bytes());
    out.extend_from_slice(&(parts.settings.len() as u32).to_le_bytes());
    for value in parts.settings {
        put(&mut out, value);
    }
    match parts.ttl_only {
        None => out.push(0),
        Some(ttl) => {
            out.push(1);
            out.extend_from_slice(&ttl.to_le_bytes());
        }
    }
    out.extend_from_slice(&(parts.params.len() as u32).to_le_bytes());
    for param in parts.params {
        match param {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                put(&mut out, value.as_bytes());
            }
        }
    }
    Ok(out)
}

/// The query text at the front of a key.
pub fn query_of(key: &[u8]) -> String {
    let Some(len) = key.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return String::new();
    };
    key.get(4..4 + len).map(|q| String::from_utf8_lossy(q).into_owned()).unwrap_or_default()
}

/// A 64-bit hash that is the same in every backend (XXH3, unseeded). It only picks the
/// bucket; keys are compared in full, so a collision costs a comparison, never a wrong row.
#[inline]
pub fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys in these tests are tiny: their allocation never fails.
    fn encode(parts: &KeyParts<'_>) -> Vec<u8> {
        super::encode(parts).unwrap()
    }

    fn parts<'a>(
        query: &'a str,
        params: &'a [Option<&'a str>],
        settings: &'a [&'a [u8]],
    ) -> KeyParts<'a> {
        KeyParts {
            flavor: Flavor::Rows,
            dbid: 5,
            roleid: 10,
            query,
            params,
            settings,
            ttl_only: None,
        }
    }

    #[test]
    fn every_part_changes_the_key() {
        let settings: Vec<&[u8]> = vec![b"public", b"UTC"];
        let params = vec![Some("42")];
        let base = encode(&parts("select $1", &params, &settings));
        assert_ne!(
            base,
            encode(&KeyParts { roleid: 11, ..parts("select $1", &params, &settings) })
        );
        assert_ne!(base, encode(&KeyParts { dbid: 6, ..parts("select $1", &params, &settings) }));
        assert_ne!(
            base,
            encode(&KeyParts { flavor: Flavor::Json, ..parts("select $1", &params, &settings) })
        );
        let ttl_only = encode(&KeyParts {
            ttl_only: Some(5_000_000),
            ..parts("select $1", &params, &settings)
        });
        assert_ne!(base, ttl_only, "entries served by TTL only are never shared with checked ones");
        assert_ne!(
            ttl_only,
            encode(&KeyParts {
                ttl_only: Some(6_000_000),
                ..parts("select $1", &params, &settings)
            })
        );
        assert_ne!(base, encode(&parts("select $1", &[Some("43")], &settings)));
        assert_ne!(base, encode(&parts("select $1", &[None], &settings)));
        assert_ne!(base, encode(&parts("select $1", &params, &[b"public", b"Europe/Paris"])));
        assert_ne!(base, encode(&parts("select $1 ", &params, &settings)));
        assert_eq!(base, encode(&parts("select $1", &params, &settings)));
        assert_eq!(hash(&base), hash(&encode(&parts("select $1", &params, &settings))));
        for key in [&base, &ttl_only, &encode(&parts("select $1", &[None], &settings))] {
            assert_eq!(key.len(), key.capacity(), "the key is sized exactly, with no regrowth");
        }
    }

    #[test]
    fn lengths_keep_boundaries_apart() {
        let a = encode(&parts("q", &[Some("ab"), Some("c")], &[]));
        let b = encode(&parts("q", &[Some("a"), Some("bc")], &[]));
        assert_ne!(a, b);
        assert_eq!(query_of(&a), "q");
        assert_eq!(query_of(&[1, 0]), "");
    }
}
