//! The advisor's progress as NOTICE messages while `pitstop.advisor_progress` is on: PostgreSQL
//! sends a NOTICE to the client at once, so a client sees it while the call runs. What is
//! said and when is `pitstop_core::advisor::progress`.

use pitstop_core::advisor::progress::{Stage, Throttle, PREFIX};
use std::time::Instant;

pub struct Progress {
    /// The setting as the run began: off, nothing is said (nor timed).
    on: bool,
    begun: Instant,
    throttle: Throttle,
}

impl Progress {
    pub fn start() -> Progress {
        Progress {
            on: crate::gucs::advisor_progress(),
            begun: Instant::now(),
            throttle: Throttle::default(),
        }
    }

    /// Says where the run stands, when the throttle lets it.
    pub fn report(&mut self, stage: Stage) {
        if self.on && self.throttle.due(&stage, self.begun.elapsed()) {
            pgrx::notice!("{PREFIX}{}", stage.message());
        }
    }

    /// Says that the run is over, with `suggested` indexes.
    pub fn done(&mut self, suggested: usize) {
        let seconds = self.begun.elapsed().as_secs_f64();
        self.report(Stage::Done { suggested, seconds });
    }
}
