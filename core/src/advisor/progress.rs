//! What the advisor says while it runs (`pitstop.advisor_progress`): one line per stage start
//! and end, and at most about one a second in between, so that a fast run stays quiet and a
//! slow one is never silent for long. The extension sends each line as a NOTICE prefixed
//! with `PREFIX`, by which the command line recognises them.

use std::time::Duration;

/// Starts every progress message, so that a client can tell them from other notices.
pub const PREFIX: &str = "pitstop advisor: ";

/// Least time between two messages within a stage.
pub const EVERY: Duration = Duration::from_secs(1);

/// Where an advice run stands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    /// Each workload statement planned once, with no new index: `done` of `total`.
    Planning { done: usize, total: usize },
    /// Candidate indexes prepared as hypothetical indexes: `done` of `total`.
    Preparing { done: usize, total: usize },
    /// Each statement planned with every candidate it could use at once: `done` of `total`.
    Screening { done: usize, total: usize },
    /// Greedy `pass` of `passes` (two under a budget), `round` from 1: `left` candidates are
    /// still in play, `chosen` so far; `weighed` of them weighed in this round yet.
    Choosing {
        pass: usize,
        passes: usize,
        round: usize,
        left: usize,
        chosen: usize,
        weighed: usize,
    },
    /// The chosen indexes measured one at a time: `done` of `total`.
    Measuring { done: usize, total: usize },
    /// The run is over: `suggested` indexes, after `seconds`.
    Done { suggested: usize, seconds: f64 },
}

impl Stage {
    /// A stage starts or ends here: said whatever the time since the last message.
    pub fn is_boundary(&self) -> bool {
        match *self {
            Stage::Planning { done, total } => done == 0 || done == total,
            Stage::Preparing { done, .. }
            | Stage::Screening { done, .. }
            | Stage::Measuring { done, .. } => done == 0,
            Stage::Choosing { round, weighed, .. } => round == 1 && weighed == 0,
            Stage::Done { .. } => true,
        }
    }

    /// The message, without `PREFIX`.
    pub fn message(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match *self {
            Stage::Planning { done: 0, total } => {
                format!("planning {}", plural(total, "statement", "statements"))
            }
            Stage::Planning { done, total } => format!("planned {done} of {total} statements"),
            Stage::Preparing { done: 0, total } => {
                format!("preparing {}", plural(total, "candidate index", "candidate indexes"))
            }
            Stage::Preparing { done, total } => {
                format!("prepared {done} of {total} candidate indexes")
            }
            Stage::Screening { done: 0, total } => format!(
                "planning {} with every candidate at once",
                plural(total, "statement", "statements")
            ),
            Stage::Screening { done, total } => {
                format!("planned {done} of {total} statements with every candidate at once")
            }
            Stage::Choosing { pass, passes, round, left, chosen, .. } => {
                let pass =
                    if passes > 1 { format!(" (pass {pass} of {passes})") } else { "".into() };
                format!(
                    "choosing indexes{pass}: round {round}, {} left, {chosen} chosen",
                    plural(left, "candidate", "candidates")
                )
            }
            Stage::Measuring { done: 0, total } => {
                format!(
                    "measuring the {} one at a time",
                    plural(total, "chosen index", "chosen indexes")
                )
            }
            Stage::Measuring { done, total } => {
                format!("measured {done} of {total} chosen indexes")
            }
            Stage::Done { suggested, seconds } => format!(
                "done in {seconds:.1} s: {} suggested",
                plural(suggested, "index", "indexes")
            ),
        }
    }
}

/// Decides which messages are said: every boundary, and in between one when `EVERY` has
/// passed since the last message said.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    /// When the last message was said (time since the run began).
    last: Option<Duration>,
}

impl Throttle {
    /// Whether a message about `stage` is said at `now` (time since the run began); when it
    /// is, `now` becomes the last.
    pub fn due(&mut self, stage: &Stage, now: Duration) -> bool {
        let due = stage.is_boundary() || self.last.is_none_or(|last| now >= last + EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choosing(round: usize, weighed: usize) -> Stage {
        Stage::Choosing { pass: 1, passes: 1, round, left: 57, chosen: 2, weighed }
    }

    #[test]
    fn messages_name_the_stage_and_how_far_it_got() {
        let said = |s: Stage| s.message();
        assert_eq!(said(Stage::Planning { done: 0, total: 99 }), "planning 99 statements");
        assert_eq!(said(Stage::Planning { done: 40, total: 99 }), "planned 40 of 99 statements");
        assert_eq!(said(Stage::Planning { done: 0, total: 1 }), "planning 1 statement");
        assert_eq!(
            said(Stage::Preparing { done: 0, total: 312 }),
            "preparing 312 candidate indexes"
        );
        assert_eq!(
            said(Stage::Preparing { done: 100, total: 312 }),
            "prepared 100 of 312 candidate indexes"
        );
        assert_eq!(
            said(Stage::Screening { done: 3, total: 99 }),
            "planned 3 of 99 statements with every candidate at once"
        );
        assert_eq!(
            said(choosing(3, 10)),
            "choosing indexes: round 3, 57 candidates left, 2 chosen"
        );
        assert_eq!(
            said(Stage::Choosing { pass: 2, passes: 2, round: 1, left: 1, chosen: 0, weighed: 0 }),
            "choosing indexes (pass 2 of 2): round 1, 1 candidate left, 0 chosen"
        );
        assert_eq!(
            said(Stage::Measuring { done: 0, total: 8 }),
            "measuring the 8 chosen indexes one at a time"
        );
        assert_eq!(said(Stage::Measuring { done: 3, total: 8 }), "measured 3 of 8 chosen indexes");
        assert_eq!(
            said(Stage::Done { suggested: 1, seconds: 12.34 }),
            "done in 12.3 s: 1 index suggested"
        );
    }

    #[test]
    fn stage_starts_and_ends_are_boundaries_and_steps_within_are_not() {
        assert!(Stage::Planning { done: 0, total: 9 }.is_boundary());
        assert!(Stage::Planning { done: 9, total: 9 }.is_boundary());
        assert!(!Stage::Planning { done: 4, total: 9 }.is_boundary());
        assert!(Stage::Preparing { done: 0, total: 9 }.is_boundary());
        assert!(!Stage::Preparing { done: 9, total: 9 }.is_boundary());
        assert!(choosing(1, 0).is_boundary());
        assert!(!choosing(1, 1).is_boundary());
        assert!(!choosing(2, 0).is_boundary());
        assert!(Stage::Measuring { done: 0, total: 2 }.is_boundary());
        assert!(Stage::Done { suggested: 0, seconds: 0.0 }.is_boundary());
    }

    #[test]
    fn steps_within_a_stage_are_said_at_most_once_a_second() {
        let ms = Duration::from_millis;
        let step = |done| Stage::Planning { done, total: 1000 };
        let mut throttle = Throttle::default();
        assert!(throttle.due(&step(0), ms(0)));
        // A thousand steps within the first second: none is said.
        assert!((1..1000).all(|done| !throttle.due(&step(done), ms(done as u64 * 999 / 1000))));
        assert!(throttle.due(&step(500), ms(1000)));
        assert!(!throttle.due(&step(501), ms(1999)));
        assert!(throttle.due(&step(502), ms(2000)));
        // A boundary is said at once and starts the next second.
        assert!(throttle.due(&step(1000), ms(2001)));
        assert!(!throttle.due(&choosing(2, 0), ms(2500)));
        assert!(throttle.due(&choosing(2, 1), ms(3001)));
    }

    #[test]
    fn a_first_step_is_said_at_once() {
        let mut throttle = Throttle::default();
        assert!(throttle.due(&choosing(5, 3), Duration::from_secs(30)));
    }
}
