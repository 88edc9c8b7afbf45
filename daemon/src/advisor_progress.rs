//! The index advisor's progress on the command line. With `pitstop.advisor_progress` on, the
//! extension sends NOTICE messages as it goes (`pitstop advisor: planned 40 of 99
//! statements`); the commands that run the advisor turn it on for their own session, when
//! the server's pitstop has the setting, and show each message on stderr while the call runs.

use crate::db::Notices;
use crate::progress::Line;
use std::future::Future;
use tokio_postgres::Client;

/// What the extension puts before each progress message
/// (`pitstop_core::advisor::progress::PREFIX`).
const PREFIX: &str = "pitstop advisor: ";

/// Turns the advisor's progress messages on for `client`'s session when the server's pitstop
/// has the setting (an older one does not: then nothing changes). Without
/// shared_preload_libraries the library, and so its settings, comes with the session's first
/// call of a pitstop function: a harmless one is called first when the setting is missing.
async fn enable(client: &Client) {
    const ENABLE: &str =
        "SELECT pg_catalog.set_config(name, 'on', false) FROM pg_catalog.pg_settings
                           WHERE name = 'pitstop.advisor_progress'";
    const LOAD: &str = "SELECT count(*) FROM pitstop.hypo_list()";
    if client.query(ENABLE, &[]).await.is_ok_and(|rows| rows.is_empty())
        && client.query(LOAD, &[]).await.is_ok()
    {
        let _ = client.query(ENABLE, &[]).await;
    }
}

/// The progress message in a notice's text; None for any other notice.
fn progress_message(text: &str) -> Option<&str> {
    text.strip_prefix(PREFIX).filter(|m| !m.is_empty())
}

/// Runs `work`, a call of the advisor on `client`'s session, with the advisor's progress on:
/// each message is shown on stderr as it comes (a spinner with the time elapsed and the
/// latest message on a terminal, `progress: <message>` lines otherwise). Returns what `work`
/// returns; stdout is left alone.
pub async fn run<T>(client: &Client, notices: &mut Notices, work: impl Future<Output = T>) -> T {
    enable(client).await;
    let line = Line::spinner("running the index advisor");
    let show = |text: &str| {
        if let Some(message) = progress_message(text) {
            line.show(message.to_string(), None);
        }
    };
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(notice) = notices.recv() => show(notice.message()),
        }
    };
    // A statement's notices precede its result: the last ones are here already.
    while let Ok(notice) = notices.try_recv() {
        show(notice.message());
    }
    line.finish();
    result
}

#[cfg(test)]
mod tests {
    use super::progress_message;

    #[test]
    fn only_the_advisors_notices_are_progress() {
        assert_eq!(
            progress_message("pitstop advisor: planned 40 of 99 statements"),
            Some("planned 40 of 99 statements")
        );
        assert_eq!(progress_message("pitstop advisor: "), None);
        assert_eq!(progress_message("relation \"t\" already exists, skipping"), None);
        assert_eq!(progress_message("advisor: planned 1 of 2 statements"), None);
    }
}
