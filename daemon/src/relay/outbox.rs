//! The relay's PostgreSQL side: the outbox read by transaction id, the saved cursor in
//! `pitstop.relay_state`, pruning, and the LISTEN connection that wakes the relay.
//!
//! Why transaction ids and not outbox ids: ids of a bigserial are taken at insert time but
//! become visible at commit, so a row with a smaller id can appear after a larger one was
//! read. Each page is one statement that returns its own snapshot S (`pg_current_snapshot()`
//! of the statement) with up to `batch` rows in id order among those not yet delivered: the
//! rows the previous page's snapshot could not see (xid ≥ its xmax, or xid in its
//! in-progress list), plus, while a round is paging through more than one batch, the rows
//! after the previous page's last id. When a page comes back short, every row S can see has
//! been delivered once Redis acknowledged it — in particular every row with xid < xmin(S), the
//! horizon saved in the database. After a restart or a reconnect the relay reads everything
//! from the saved horizon again (duplicates are harmless; nothing is skipped).

use crate::config::PostgresConfig;
use crate::db;
use futures_util::StreamExt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Statement};
use tokio_util::sync::CancellationToken;

/// The channel the extension's trigger notifies at commit.
const CHANNEL: &str = "pitstop_invalidation";

const CHECK_SCHEMA: &str =
    "SELECT pg_catalog.to_regclass('pitstop.invalidation_outbox') IS NOT NULL, \
                                   pg_catalog.to_regclass('pitstop.relay_state') IS NOT NULL";

const ENSURE_CURSOR: &str =
    "INSERT INTO pitstop.relay_state (consumer) VALUES ($1) ON CONFLICT (consumer) DO NOTHING";

const LOAD_CURSOR: &str = "SELECT horizon::text FROM pitstop.relay_state WHERE consumer = $1";

/// One page: the statement's snapshot, and up to $4 undelivered rows in id order (none: one
/// row of NULLs after the snapshot). Three disjoint branches, each with an index path: rows
/// the last snapshot could not see — newer xids, in-progress xids — up to the last id read
/// (xid index), and the rows after it (primary key), so that paging through a large backlog
/// stays a range scan. The session plans it once (generic plan, see `connect`): the upper
/// bound on xid makes the planner expect a narrow range whatever the statistics say, so it
/// picks the xid index even for a never-analyzed outbox. (A single `ORDER BY id LIMIT` over
/// the OR of all three invites a primary-key scan filtering every older row.)
const PAGE: &str = "SELECT s.snapshot, o.id, o.database::text, o.relation, o.tags, \
                           extract(epoch FROM clock_timestamp() - o.created_at)::float8 \
                    FROM (SELECT pg_current_snapshot()::text AS snapshot) s \
                    LEFT JOIN LATERAL ( \
                        SELECT * FROM ( \
                            (SELECT id, database, relation, tags, created_at FROM pitstop.invalidation_outbox \
                             WHERE xid >= $1::text::xid8 AND xid <= '18446744073709551615'::xid8 AND id <= $3) \
                            UNION ALL \
                            (SELECT id, database, relation, tags, created_at FROM pitstop.invalidation_outbox \
                             WHERE xid = ANY ($2::text[]::xid8[]) AND id <= $3) \
                            UNION ALL \
                            (SELECT id, database, relation, tags, created_at FROM pitstop.invalidation_outbox \
                             WHERE id > $3 ORDER BY id LIMIT $4)) u \
                        ORDER BY id LIMIT $4) o ON true";

/// Moves the cursor forward only (two relays sharing a consumer name cannot move it back).
const SAVE_CURSOR: &str =
    "INSERT INTO pitstop.relay_state AS s (consumer, horizon, delivered, updated_at) \
                           VALUES ($1, $2::text::xid8, $3, now()) \
                           ON CONFLICT (consumer) DO UPDATE \
                           SET horizon = greatest(s.horizon, excluded.horizon), \
                               delivered = s.delivered + excluded.delivered, updated_at = now()";

/// Rows every consumer has delivered (below the smallest saved horizon) and older than the
/// retention, at most $2 at a time (the xid range is two-sided for the generic plan's sake).
const PRUNE: &str = "WITH doomed AS ( \
                         SELECT id FROM pitstop.invalidation_outbox \
                         WHERE xid >= '0'::xid8 AND xid < (SELECT min(horizon) FROM pitstop.relay_state) \
                           AND created_at < now() - make_interval(secs => $1) \
                         LIMIT $2) \
                     DELETE FROM pitstop.invalidation_outbox o USING doomed WHERE o.id = doomed.id";

const PRUNE_CHUNK: i64 = 10_000;

/// A transaction snapshot as `pg_current_snapshot()` prints it: `xmin:xmax:xip,…`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

impl FromStr for Snapshot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("unexpected snapshot {s:?}");
        let mut parts = s.splitn(3, ':');
        let xmin = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let xmax = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let xip = match parts.next() {
            Some("") | None => Vec::new(),
            Some(list) => {
                list.split(',').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?
            }
        };
        Ok(Snapshot { xmin, xmax, xip })
    }
}

/// Which rows are not known to be delivered: those `seen` could not see, and those after
/// `through_id`; every row with xid below `horizon` is delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    seen: Snapshot,
    through_id: i64,
    horizon: u64,
}

impl Position {
    /// After a (re)connect: everything from the saved horizon.
    pub fn from_horizon(horizon: u64) -> Position {
        Position {
            seen: Snapshot { xmin: horizon, xmax: horizon, xip: Vec::new() },
            through_id: i64::MAX,
            horizon,
        }
    }

    /// Every row with a smaller xid has been delivered.
    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// The PAGE query's parameters.
    fn params(&self) -> (String, Vec<String>, i64) {
        (
            self.seen.xmax.to_string(),
            self.seen.xip.iter().map(u64::to_string).collect(),
            self.through_id,
        )
    }

    /// The position once a page read under `snapshot` was acknowledged. A full page may have
    /// left rows after its last id: the horizon waits for the short page that ends the round.
    pub fn after(&self, page: &Page, batch: usize) -> Position {
        match page.rows.last() {
            Some(last) if page.rows.len() >= batch => {
                Position { seen: page.snapshot.clone(), through_id: last.id, horizon: self.horizon }
            }
            _ => Position {
                seen: page.snapshot.clone(),
                through_id: i64::MAX,
                horizon: self.horizon.max(page.snapshot.xmin),
            },
        }
    }
}

/// What one PAGE statement returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub snapshot: Snapshot,
    pub rows: Vec<Row>,
}

/// One outbox row: a writing statement on a tracked table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub database: String,
    pub relation: String,
    pub tags: Vec<String>,
    /// Age of the row when it was read (from the writing transaction's start).
    pub age: Duration,
}

pub struct Outbox {
    client: Client,
    page: Statement,
    consumer: String,
    /// Upper bound on any single call (a dead TCP peer must not hang the relay).
    call_limit: Duration,
    wake: Arc<Notify>,
    closed: CancellationToken,
    driver: JoinHandle<()>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Runs `call`, bounded by `limit`, describing failures as `what: …`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", db::describe_pg(&e))),
        Err(_) => Err(format!("{what}: no answer within {}", humantime::format_duration(limit))),
    }
}

impl Outbox {
    /// Connects, checks the extension's tables, LISTENs, and returns the saved horizon.
    pub async fn connect(pg: &PostgresConfig, consumer: &str) -> Result<(Outbox, u64), String> {
        let (client, mut connection) =
            db::connect_daemon(pg, "pitstop-relay").await.map_err(|e| format!("{e:#}"))?;
        let wake = Arc::new(Notify::new());
        let closed = CancellationToken::new();
        let driver = tokio::spawn({
            let (wake, closed) = (wake.clone(), closed.clone());
            async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                        Ok(AsyncMessage::Notice(notice)) => {
                            tracing::debug!("relay: server notice: {}", notice.message())
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!("relay: PostgreSQL connection ended: {e}");
                            break;
                        }
                    }
                }
                closed.cancel();
            }
        });
        let call_limit = pg.statement_timeout + Duration::from_secs(5);
        let schema = bounded(
            call_limit,
            "checking the pitstop extension",
            client.query_one(CHECK_SCHEMA, &[]),
        )
        .await?;
        if !schema.get::<_, bool>(0) {
            return Err("the pitstop extension is not installed in this database (CREATE EXTENSION pitstop)".into());
        }
        if !schema.get::<_, bool>(1) {
            return Err("pitstop.relay_state is missing: the extension is older than this daemon (ALTER EXTENSION pitstop UPDATE)".into());
        }
        // A round is frequent (up to one per commit) and must be cheap for the server too:
        // plan once per session. The statements are written so that their generic plans use
        // the indexes (see PAGE).
        let setup = format!(
            "SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', false); LISTEN {CHANNEL}"
        );
        bounded(call_limit, "LISTEN", client.batch_execute(&setup)).await?;
        bounded(
            call_limit,
            "creating the relay cursor",
            client.execute(ENSURE_CURSOR, &[&consumer]),
        )
        .await?;
        let horizon: String = bounded(
            call_limit,
            "reading the relay cursor",
            client.query_one(LOAD_CURSOR, &[&consumer]),
        )
        .await?
        .get(0);
        let horizon = horizon.parse().map_err(|_| format!("unexpected horizon {horizon:?}"))?;
        let page = bounded(call_limit, "preparing the outbox query", client.prepare(PAGE)).await?;
        Ok((
            Outbox {
                client,
                page,
                consumer: consumer.to_string(),
                call_limit,
                wake,
                closed,
                driver,
            },
            horizon,
        ))
    }

    /// Resolves when a NOTIFY arrived since the last call (notifications coalesce).
    pub fn woken(&self) -> impl Future<Output = ()> + '_ {
        self.wake.notified()
    }

    /// Resolves when the connection is gone.
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        self.closed.cancelled()
    }

    /// The next page of undelivered rows after `position`, in id order, at most `batch`.
    pub async fn page(&self, position: &Position, batch: u32) -> Result<Page, String> {
        let (lo, xip, through_id) = position.params();
        let limit = i64::from(batch);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&lo, &xip, &through_id, &limit];
        let result =
            bounded(self.call_limit, "reading the outbox", self.client.query(&self.page, &params))
                .await?;
        let snapshot: String = result
            .first()
            .ok_or("the outbox query returned nothing")?
            .try_get(0)
            .map_err(|e| e.to_string())?;
        let mut rows = Vec::with_capacity(result.len());
        for r in &result {
            let Some(id) = r.try_get::<_, Option<i64>>(1).map_err(|e| e.to_string())? else {
                continue;
            };
            rows.push(Row {
                id,
                database: r.try_get(2).map_err(|e| e.to_string())?,
                relation: r.try_get(3).map_err(|e| e.to_string())?,
                tags: r.try_get(4).map_err(|e| e.to_string())?,
                age: Duration::from_secs_f64(
                    r.try_get::<_, f64>(5).map_err(|e| e.to_string())?.max(0.0),
                ),
            });
        }
        Ok(Page { snapshot: snapshot.parse()?, rows })
    }

    /// Saves the horizon (every row below it delivered) and adds `delivered` to the count.
    pub async fn save(&self, horizon: u64, delivered: u64) -> Result<(), String> {
        let delivered = i64::try_from(delivered).unwrap_or(i64::MAX);
        let horizon = horizon.to_string();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&self.consumer, &horizon, &delivered];
        bounded(
            self.call_limit,
            "saving the relay cursor",
            self.client.execute(SAVE_CURSOR, &params),
        )
        .await
        .map(|_| ())
    }

    /// Deletes delivered rows older than `retention`, in chunks; returns how many.
    pub async fn prune(&self, retention: Duration) -> Result<u64, String> {
        let mut total = 0;
        let started = std::time::Instant::now();
        loop {
            let seconds = retention.as_secs_f64();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&seconds, &PRUNE_CHUNK];
            let n =
                bounded(self.call_limit, "pruning the outbox", self.client.execute(PRUNE, &params))
                    .await?;
            total += n;
            if n < PRUNE_CHUNK as u64 || started.elapsed() > self.call_limit {
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_parse_with_and_without_in_progress_xids() {
        assert_eq!(
            "10:20:12,15".parse::<Snapshot>().unwrap(),
            Snapshot { xmin: 10, xmax: 20, xip: vec![12, 15] }
        );
        assert_eq!(
            "10:10:".parse::<Snapshot>().unwrap(),
            Snapshot { xmin: 10, xmax: 10, xip: vec![] }
        );
        assert!("10".parse::<Snapshot>().is_err());
        assert!("a:b:".parse::<Snapshot>().is_err());
        assert!("1:2:x".parse::<Snapshot>().is_err());
    }

    fn page(snapshot: &str, ids: &[i64]) -> Page {
        let rows = ids
            .iter()
            .map(|&id| Row {
                id,
                database: "d".into(),
                relation: "r".into(),
                tags: vec![],
                age: Duration::ZERO,
            })
            .collect();
        Page { snapshot: snapshot.parse().unwrap(), rows }
    }

    #[test]
    fn a_position_reads_what_its_snapshot_could_not_see() {
        let start = Position::from_horizon(7);
        assert_eq!(start.params(), ("7".to_string(), vec![], i64::MAX));
        assert_eq!(start.horizon(), 7);
        // A short page ends the round: the horizon moves to the snapshot's xmin.
        let done = start.after(&page("10:20:10,15", &[3, 4]), 5);
        assert_eq!(
            done.params(),
            ("20".to_string(), vec!["10".to_string(), "15".to_string()], i64::MAX)
        );
        assert_eq!(done.horizon(), 10);
    }

    #[test]
    fn a_full_page_keeps_the_horizon_until_the_round_ends() {
        let start = Position::from_horizon(7);
        let partial = start.after(&page("30:30:", &[1, 2, 3]), 3);
        assert_eq!(
            partial.params(),
            ("30".to_string(), vec![], 3),
            "rows after id 3 are still to come"
        );
        assert_eq!(partial.horizon(), 7);
        let done = partial.after(&page("31:32:31", &[4]), 3);
        assert_eq!(done.params(), ("32".to_string(), vec!["31".to_string()], i64::MAX));
        assert_eq!(done.horizon(), 31);
        // The horizon never moves back.
        assert_eq!(done.after(&page("12:40:12", &[]), 3).horizon(), 31);
    }
}
