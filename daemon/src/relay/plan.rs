//! What a batch of outbox rows does to Redis, as plain data (the Redis conventions that
//! applications rely on; see the README):
//!
//! - `{prefix}tag:{tag}`: a SET of the application's cache keys for that tag. Each member key
//!   is deleted (UNLINK), then exactly those members are removed from the set (SREM), so a
//!   key the application adds meanwhile stays registered; an emptied set disappears.
//! - `{prefix}ver:{tag}`: a counter, incremented (INCR), for version-in-key caches.
//! - A PUBLISH on the channel, one JSON message per row, for in-process caches.
//!
//! Within a batch each distinct tag is invalidated once (deleting twice changes nothing; the
//! version moves at least once per batch that touched the tag). In a Redis Cluster the member
//! keys of one tag live in different slots, so each is deleted by its own command.

use super::outbox::Row;

/// Longest argument list of one standalone UNLINK or SREM.
const CHUNK: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Conventions {
    pub prefix: String,
    /// No channel: no PUBLISH.
    pub channel: Option<String>,
    pub cluster: bool,
}

impl Conventions {
    pub fn tag_key(&self, tag: &str) -> String {
        format!("{}tag:{tag}", self.prefix)
    }
    pub fn version_key(&self, tag: &str) -> String {
        format!("{}ver:{tag}", self.prefix)
    }
}

/// A Redis command as its words.
#[derive(Debug, Clone, PartialEq)]
pub struct Command(pub Vec<Vec<u8>>);

impl Command {
    fn new(name: &str, args: impl IntoIterator<Item = Vec<u8>>) -> Command {
        Command(std::iter::once(name.as_bytes().to_vec()).chain(args).collect())
    }
}

/// The distinct tags of `rows`, in order of first appearance.
pub fn distinct_tags(rows: &[Row]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    rows.iter()
        .flat_map(|r| r.tags.iter())
        .map(String::as_str)
        .filter(|t| seen.insert(*t))
        .collect()
}

/// Step 1: read each tag's member keys.
pub fn member_reads(conv: &Conventions, tags: &[&str]) -> Vec<Command> {
    tags.iter().map(|t| Command::new("SMEMBERS", [conv.tag_key(t).into_bytes()])).collect()
}

/// Step 2: delete the members, unregister them, bump the versions (`members[i]` belongs to
/// `tags[i]`); step 3: announce every row.
pub struct Writes {
    pub invalidations: Vec<Command>,
    pub announcements: Vec<Command>,
}

pub fn writes(conv: &Conventions, rows: &[Row], tags: &[&str], members: &[Vec<Vec<u8>>]) -> Writes {
    let mut invalidations = Vec::new();
    for (tag, keys) in tags.iter().zip(members) {
        if !keys.is_empty() {
            if conv.cluster {
                invalidations.extend(keys.iter().map(|k| Command::new("UNLINK", [k.clone()])));
            } else {
                invalidations
                    .extend(keys.chunks(CHUNK).map(|c| Command::new("UNLINK", c.iter().cloned())));
            }
            let set = conv.tag_key(tag).into_bytes();
            invalidations.extend(keys.chunks(CHUNK).map(|c| {
                Command::new("SREM", std::iter::once(set.clone()).chain(c.iter().cloned()))
            }));
        }
        invalidations.push(Command::new("INCR", [conv.version_key(tag).into_bytes()]));
    }
    let announcements = match &conv.channel {
        Some(channel) => rows
            .iter()
            .map(|r| {
                Command::new("PUBLISH", [channel.clone().into_bytes(), message(r).into_bytes()])
            })
            .collect(),
        None => Vec::new(),
    };
    Writes { invalidations, announcements }
}

/// The PUBLISH payload: `{"id":…,"database":…,"relation":…,"tags":[…]}`.
pub fn message(row: &Row) -> String {
    serde_json::json!({"id": row.id, "database": row.database, "relation": row.relation, "tags": row.tags}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(id: i64, tags: &[&str]) -> Row {
        Row {
            id,
            database: "shop".into(),
            relation: "public.orders".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            age: Duration::ZERO,
        }
    }

    fn text(commands: &[Command]) -> Vec<String> {
        commands
            .iter()
            .map(|c| {
                c.0.iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn conv(cluster: bool) -> Conventions {
        Conventions {
            prefix: "pitstop:".into(),
            channel: Some("pitstop:invalidations".into()),
            cluster,
        }
    }

    #[test]
    fn each_tag_is_invalidated_once_per_batch() {
        let rows = [row(1, &["shop.public.orders", "orders"]), row(2, &["shop.public.orders"])];
        let tags = distinct_tags(&rows);
        assert_eq!(tags, ["shop.public.orders", "orders"]);
        assert_eq!(
            text(&member_reads(&conv(false), &tags)),
            ["SMEMBERS pitstop:tag:shop.public.orders", "SMEMBERS pitstop:tag:orders"]
        );
        let members = vec![vec![b"k1".to_vec(), b"k2".to_vec()], vec![]];
        let w = writes(&conv(false), &rows, &tags, &members);
        assert_eq!(
            text(&w.invalidations),
            [
                "UNLINK k1 k2",
                "SREM pitstop:tag:shop.public.orders k1 k2",
                "INCR pitstop:ver:shop.public.orders",
                "INCR pitstop:ver:orders"
            ]
        );
        assert_eq!(w.announcements.len(), 2, "one message per row");
    }

    #[test]
    fn cluster_deletes_member_keys_one_by_one() {
        let rows = [row(1, &["t"])];
        let members = vec![vec![b"a".to_vec(), b"b".to_vec()]];
        let w = writes(&conv(true), &rows, &["t"], &members);
        assert_eq!(
            text(&w.invalidations),
            ["UNLINK a", "UNLINK b", "SREM pitstop:tag:t a b", "INCR pitstop:ver:t"]
        );
    }

    #[test]
    fn long_member_lists_are_chunked() {
        let keys: Vec<Vec<u8>> = (0..600).map(|i| format!("k{i}").into_bytes()).collect();
        let w = writes(&conv(false), &[row(1, &["t"])], &["t"], &[keys]);
        let words: Vec<usize> = w.invalidations.iter().map(|c| c.0.len()).collect();
        assert_eq!(words, [257, 257, 89, 258, 258, 90, 2]);
    }

    #[test]
    fn messages_are_json_and_optional() {
        let r = row(7, &["shop.public.orders", "orders"]);
        let m: serde_json::Value = serde_json::from_str(&message(&r)).unwrap();
        assert_eq!(
            m,
            serde_json::json!({"id": 7, "database": "shop", "relation": "public.orders", "tags": ["shop.public.orders", "orders"]})
        );
        let quiet = Conventions { channel: None, ..conv(false) };
        assert!(writes(&quiet, &[r], &["orders"], &[vec![]]).announcements.is_empty());
    }
}
