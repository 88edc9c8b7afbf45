//! "Never two at once" as a set of claimed keys: one set for jobs (a run that would overlap
//! its job's previous run is skipped) and one for targets (two jobs never act on one table
//! at the same time). A claim is released when dropped, so an error or a cancelled run
//! cannot leave a key taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Keys currently claimed, each with who holds it.
#[derive(Clone, Default)]
pub struct Busy {
    held: Arc<Mutex<HashMap<String, String>>>,
}

/// A held key; released on drop.
pub struct Claim {
    busy: Busy,
    key: String,
}

impl Busy {
    /// Claims `key` for `holder`, or returns who holds it.
    pub fn try_claim(&self, key: &str, holder: &str) -> Result<Claim, String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = held.get(key) {
            return Err(current.clone());
        }
        held.insert(key.to_string(), holder.to_string());
        Ok(Claim { busy: self.clone(), key: key.to_string() })
    }

    #[cfg(test)]
    pub fn is_claimed(&self, key: &str) -> bool {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).contains_key(key)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_already_running_is_not_started_again() {
        let runs = Busy::default();
        let first = runs.try_claim("vacuum", "run 1").unwrap();
        assert_eq!(
            runs.try_claim("vacuum", "run 2").err().as_deref(),
            Some("run 1"),
            "overlapping run must be refused"
        );
        let other = runs.try_claim("analyze", "run 3");
        assert!(other.is_ok(), "another job is independent");
        drop(first);
        assert!(!runs.is_claimed("vacuum"));
        assert!(runs.try_claim("vacuum", "run 4").is_ok(), "free again once the first run ended");
    }

    #[test]
    fn one_action_per_target_across_jobs_and_clones() {
        let targets = Busy::default();
        let shared = targets.clone();
        let held = targets.try_claim("\"public\".\"orders\"", "vacuum").unwrap();
        assert_eq!(
            shared.try_claim("\"public\".\"orders\"", "reindex").err().as_deref(),
            Some("vacuum")
        );
        assert!(shared.try_claim("\"public\".\"items\"", "reindex").is_ok());
        drop(held);
        assert!(shared.try_claim("\"public\".\"orders\"", "reindex").is_ok());
    }

    #[test]
    fn a_panicking_holder_releases_its_claim() {
        let targets = Busy::default();
        let inner = targets.clone();
        let result = std::thread::spawn(move || {
            let _claim = inner.try_claim("t", "doomed").unwrap();
            panic!("action failed");
        })
        .join();
        assert!(result.is_err());
        assert!(targets.try_claim("t", "next").is_ok());
    }
}
