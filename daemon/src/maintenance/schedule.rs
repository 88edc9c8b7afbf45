//! When jobs run: cron expressions (5-field crontab, or 6/7 fields with seconds first and an
//! optional year), evaluated in the configured time zone with crontab's rules (the `croner`
//! crate: a day that matches either a restricted day-of-month or a restricted day-of-week
//! fires, as in Vixie cron and pg_cron); optional "HH:MM-HH:MM" windows, which may wrap
//! midnight; and the rule that a run which missed its window is skipped rather than queued.
//! Pure functions of their inputs (the clock is a parameter).

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed cron expression and the text it came from.
#[derive(Debug, Clone)]
pub struct Cron {
    source: String,
    schedule: croner::Cron,
}

impl PartialEq for Cron {
    fn eq(&self, other: &Cron) -> bool {
        self.source == other.source
    }
}

impl Cron {
    /// `min hour day month weekday` (crontab), `sec min hour day month weekday [year]`, or a
    /// shorthand (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). Weekdays follow
    /// crontab in every form: 0 or 7 is Sunday, 1 Monday; names (`Mon-Fri`) work too. When both
    /// the day of the month and the day of the week are restricted, a day matching either one
    /// fires (`0 3 1 * 0`: the 1st of each month and every Sunday).
    pub fn parse(text: &str) -> Result<Cron, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("is empty: expected a cron expression such as \"0 3 * * *\"".into());
        }
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=7).contains(&fields) {
            return Err(format!("{text:?} has {fields} fields; expected 5 (minute hour day month weekday) or 6-7 (second first, optional year last)"));
        }
        // Optional seconds and year: 5 fields are crontab, 6 start with seconds, 7 end with a year.
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            .dom_and_dow(false)
            .build();
        let schedule = parser
            .parse(&vixie_day_rule(trimmed))
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        Ok(Cron { source: trimmed.to_string(), schedule })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`, in `tz`'s wall clock.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Vixie cron (and pg_cron, which reuses its parser) ORs the two day fields only when neither
/// starts with `*`: a stepped star such as `*/2` still counts as a star and the fields are
/// ANDed. croner treats only a bare `*` that way, so such an expression gets croner's
/// AND marker (`+` before the weekday field).
fn vixie_day_rule(text: &str) -> String {
    let mut fields: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let (dom, dow) = match fields.len() {
        5 => (2, 4),
        6 | 7 => (3, 5),
        _ => return text.to_string(),
    };
    let bare = |f: &str| f == "*" || f == "?";
    let stepped_star = |f: &str| f.starts_with('*') && !bare(f);
    if !bare(&fields[dom])
        && !bare(&fields[dow])
        && !fields[dow].starts_with('+')
        && (stepped_star(&fields[dom]) || stepped_star(&fields[dow]))
    {
        fields[dow].insert(0, '+');
    }
    fields.join(" ")
}

/// A daily time window `HH:MM-HH:MM` in the job's time zone: from the start (included) to the
/// end (excluded). A window that crosses midnight says so with `+1` on its end (`22:00-02:00+1`,
/// as timetables write the next day); without it an end before the start is an error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let shape = || {
            format!("{text:?} is not a window such as \"01:00-05:00\" or \"22:00-02:00+1\" (HH:MM-HH:MM)")
        };
        let (start, end) = text.trim().split_once('-').ok_or_else(shape)?;
        let (end, next_day) = match end.trim().strip_suffix("+1") {
            Some(end) => (end, true),
            None => (end, false),
        };
        let minutes = |t: &str| -> Result<u32, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(shape)?;
            let (h, m): (u32, u32) =
                (h.parse().map_err(|_| shape())?, m.parse().map_err(|_| shape())?);
            if h > 23 || m > 59 || t.trim().len() != 5 {
                return Err(format!("{:?} is not a time of day (00:00 to 23:59)", t.trim()));
            }
            Ok(h * 60 + m)
        };
        let window = Window { start: minutes(start)?, end: minutes(end)? };
        if window.start == window.end {
            return Err(format!("{text:?} ends when it starts: an empty window would skip every run (leave window empty for none)"));
        }
        match (window.end < window.start, next_day) {
            (true, false) => Err(format!(
                "{text:?} ends before it starts; a window that crosses midnight ends on the next day: \"{}+1\"",
                text.trim()
            )),
            (false, true) => Err(format!("{text:?}: +1 (ends the next day) is only for a window that crosses midnight")),
            _ => Ok(window),
        }
    }

    pub fn contains(&self, time: NaiveTime) -> bool {
        let t = time.hour() * 60 + time.minute();
        if self.start < self.end {
            (self.start..self.end).contains(&t)
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether `at` falls inside the window, on `tz`'s wall clock.
    pub fn contains_at(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        self.contains(at.with_timezone(&tz).time())
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )?;
        if self.end < self.start {
            write!(f, "+1")?;
        }
        Ok(())
    }
}

/// What to do with a run that came due at `due`, now that the scheduler got to it at `now`.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Run,
    Skip(String),
}

/// Occurrences that came due while the daemon could not start them are not queued: only
/// the latest one counts (`latest_due`). It runs if `now` is inside the window (or there is
/// none), else it is skipped.
pub fn decide(window: Option<&Window>, tz: Tz, now: DateTime<Utc>) -> Decision {
    match window {
        Some(w) if !w.contains_at(tz, now) => {
            let local = now.with_timezone(&tz).format("%H:%M");
            Decision::Skip(format!("missed its window {w} ({local} {tz} now)"))
        }
        _ => Decision::Run,
    }
}

/// The latest fire time at or before `now`, starting from `scheduled` (a fire time that came
/// due), and how many earlier occurrences were passed over.
pub fn latest_due(
    cron: &Cron,
    tz: Tz,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, u32) {
    let (mut due, mut passed) = (scheduled, 0u32);
    // Bounded: a per-second job after a long suspension must not spin.
    while passed < 100_000 {
        match cron.next_after(tz, due) {
            Some(next) if next <= now => {
                due = next;
                passed += 1;
            }
            _ => break,
        }
    }
    (due, passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    #[test]
    fn five_field_crontab_gets_seconds_and_six_or_seven_fields_are_taken_as_they_are() {
        let daily = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(Tz::UTC, utc(2024, 3, 1, 2, 30, 0)),
            Some(utc(2024, 3, 2, 2, 30, 0))
        );
        let every_ten_seconds = Cron::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            every_ten_seconds.next_after(Tz::UTC, utc(2024, 3, 1, 0, 0, 1)),
            Some(utc(2024, 3, 1, 0, 0, 10))
        );
        let with_year = Cron::parse("0 0 12 1 Jan * 2030").unwrap();
        assert_eq!(
            with_year.next_after(Tz::UTC, utc(2024, 1, 1, 0, 0, 0)),
            Some(utc(2030, 1, 1, 12, 0, 0))
        );
        assert!(Cron::parse("@hourly").is_ok());
        assert_eq!(Cron::parse("  0 3 * * *  ").unwrap().source(), "0 3 * * *");
    }

    #[test]
    fn weekday_numbers_follow_crontab() {
        // 2024-03-03 is a Sunday.
        let sunday = utc(2024, 3, 3, 12, 0, 0);
        let next_day = |expr: &str| {
            Cron::parse(expr).unwrap().next_after(Tz::UTC, sunday).unwrap().format("%a").to_string()
        };
        assert_eq!(next_day("0 3 * * 0"), "Sun", "0 is Sunday");
        assert_eq!(next_day("0 3 * * 7"), "Sun", "7 is Sunday too");
        assert_eq!(next_day("0 3 * * 1"), "Mon");
        assert_eq!(next_day("0 3 * * 6"), "Sat");
        assert_eq!(next_day("0 0 3 * * 1-5"), "Mon");
        assert_eq!(next_day("0 3 * * 5-7"), "Fri");
        assert_eq!(next_day("0 3 * * Sat,0"), "Sat");
        assert_eq!(next_day("0 3 * * Tue"), "Tue");
    }

    /// The next `n` fire times after `after`, as "YYYY-MM-DD HH:MM Day" in UTC.
    fn upcoming(expr: &str, after: DateTime<Utc>, n: usize) -> Vec<String> {
        let cron = Cron::parse(expr).unwrap();
        let mut at = after;
        (0..n)
            .map(|_| {
                at = cron.next_after(Tz::UTC, at).unwrap();
                at.format("%Y-%m-%d %H:%M %a").to_string()
            })
            .collect()
    }

    #[test]
    fn day_of_month_or_day_of_week_as_in_crontab() {
        // Both day fields restricted: either one matching fires (Vixie cron, pg_cron).
        // Calendar: 2024-02-25, 03-03, 03-10, 03-17, 03-24, 03-31 and 04-07 are Sundays;
        // 2024-03-01 is a Friday, 04-01 a Monday and 09-01 a Sunday (one run, not two).
        assert_eq!(
            upcoming("0 3 1 * 0", utc(2024, 2, 20, 12, 0, 0), 9),
            [
                "2024-02-25 03:00 Sun",
                "2024-03-01 03:00 Fri",
                "2024-03-03 03:00 Sun",
                "2024-03-10 03:00 Sun",
                "2024-03-17 03:00 Sun",
                "2024-03-24 03:00 Sun",
                "2024-03-31 03:00 Sun",
                "2024-04-01 03:00 Mon",
                "2024-04-07 03:00 Sun",
            ]
        );
        assert_eq!(
            upcoming("0 3 1 * 0", utc(2024, 8, 20, 0, 0, 0), 3),
            ["2024-08-25 03:00 Sun", "2024-09-01 03:00 Sun", "2024-09-08 03:00 Sun"]
        );
        // The same in the 6- and 7-field forms, and with names.
        let five = upcoming("0 3 1 * 0", utc(2024, 2, 20, 12, 0, 0), 9);
        assert_eq!(upcoming("0 0 3 1 * Sun", utc(2024, 2, 20, 12, 0, 0), 9), five);
        assert_eq!(upcoming("0 0 3 1 * 7 2024", utc(2024, 2, 20, 12, 0, 0), 9), five);
        // One field a bare star: the other alone decides.
        assert_eq!(
            upcoming("0 3 1 * *", utc(2024, 2, 20, 12, 0, 0), 2),
            ["2024-03-01 03:00 Fri", "2024-04-01 03:00 Mon"]
        );
        assert_eq!(
            upcoming("0 3 * * 0", utc(2024, 2, 20, 12, 0, 0), 2),
            ["2024-02-25 03:00 Sun", "2024-03-03 03:00 Sun"]
        );
        // A stepped star counts as a star in Vixie cron: the fields are ANDed (odd days that
        // are Mondays: 2024-03-25, 04-01, 04-15, 04-29; not Wednesday 04-03 nor Monday 04-08).
        assert_eq!(
            upcoming("0 3 */2 * 1", utc(2024, 3, 20, 0, 0, 0), 4),
            [
                "2024-03-25 03:00 Mon",
                "2024-04-01 03:00 Mon",
                "2024-04-15 03:00 Mon",
                "2024-04-29 03:00 Mon"
            ]
        );
    }

    #[test]
    fn bad_cron_strings_are_errors() {
        for bad in [
            "",
            "   ",
            "* * *",
            "0 0 0 * * * * *",
            "61 * * * *",
            "0 25 * * *",
            "0 3 * * 8",
            "0 3 * * 5-2",
            "every day",
            "0 3 * * Funday",
            "@sometimes",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let e = Cron::parse("* * *").unwrap_err();
        assert!(e.contains("3 fields") && e.contains("expected 5"), "{e}");
    }

    #[test]
    fn next_run_follows_the_time_zone_and_its_daylight_saving_changes() {
        let daily_1am = Cron::parse("0 1 * * *").unwrap();
        // 01:00 in Paris is 00:00 UTC in winter and 23:00 UTC the day before in summer.
        let paris = tz("Europe/Paris");
        assert_eq!(
            daily_1am.next_after(paris, utc(2024, 1, 10, 12, 0, 0)),
            Some(utc(2024, 1, 11, 0, 0, 0))
        );
        assert_eq!(
            daily_1am.next_after(paris, utc(2024, 7, 10, 12, 0, 0)),
            Some(utc(2024, 7, 10, 23, 0, 0))
        );
        let new_york = tz("America/New_York");
        assert_eq!(
            daily_1am.next_after(new_york, utc(2024, 1, 10, 12, 0, 0)),
            Some(utc(2024, 1, 11, 6, 0, 0))
        );
        // 02:30 does not exist in Paris on 2024-03-31 (clocks jump from 02:00 to 03:00): as in
        // Vixie cron, that day's run happens once, right after the jump, not an hour late.
        let at_230 = Cron::parse("30 2 * * *").unwrap();
        let next = at_230.next_after(paris, utc(2024, 3, 30, 12, 0, 0)).unwrap();
        assert_ne!(
            next.with_timezone(&paris).format("%Y-%m-%d %H:%M").to_string(),
            "2024-03-31 03:30"
        );
        assert_eq!(
            next.with_timezone(&paris).format("%Y-%m-%d %H:%M").to_string(),
            "2024-03-31 03:00"
        );
        let after = at_230.next_after(paris, next).unwrap();
        assert_eq!(
            after.with_timezone(&paris).format("%Y-%m-%d %H:%M").to_string(),
            "2024-04-01 02:30"
        );
    }

    #[test]
    fn windows_including_midnight_wrap() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let night = Window::parse("01:00-05:00").unwrap();
        assert!(night.contains(t(1, 0)) && night.contains(t(4, 59)));
        assert!(!night.contains(t(5, 0)) && !night.contains(t(0, 59)) && !night.contains(t(13, 0)));
        let wrap = Window::parse("22:30-02:00+1").unwrap();
        assert!(
            wrap.contains(t(22, 30))
                && wrap.contains(t(23, 59))
                && wrap.contains(t(0, 0))
                && wrap.contains(t(1, 59))
        );
        assert!(!wrap.contains(t(2, 0)) && !wrap.contains(t(12, 0)) && !wrap.contains(t(22, 29)));
        assert_eq!(wrap.to_string(), "22:30-02:00+1");
        assert_eq!(
            Window::parse(&wrap.to_string()),
            Ok(wrap),
            "what check-config prints parses back"
        );
        // In the job's time zone: 23:30 UTC is 01:30 in Helsinki in winter (inside 01:00-05:00).
        assert!(night.contains_at(tz("Europe/Helsinki"), utc(2024, 1, 10, 23, 30, 0)));
        assert!(!night.contains_at(Tz::UTC, utc(2024, 1, 10, 23, 30, 0)));
    }

    #[test]
    fn bad_windows_are_errors() {
        for bad in [
            "",
            "01:00",
            "1-5",
            "01:00-25:00",
            "01:60-02:00",
            "03:00-03:00",
            "1:00-05:00",
            "aa:bb-cc:dd",
            "01:00-05:00-06:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Window::parse("03:00-03:00").unwrap_err().contains("ends when it starts"));
        let backwards = Window::parse("22:00-02:00").unwrap_err();
        assert!(
            backwards.contains("ends before it starts") && backwards.contains("\"22:00-02:00+1\""),
            "{backwards}"
        );
        assert!(Window::parse("01:00-05:00+1")
            .unwrap_err()
            .contains("only for a window that crosses midnight"));
    }

    #[test]
    fn a_run_that_missed_its_window_is_skipped() {
        let night = Window::parse("01:00-05:00").unwrap();
        assert_eq!(decide(Some(&night), Tz::UTC, utc(2024, 1, 1, 4, 59, 0)), Decision::Run);
        let Decision::Skip(reason) = decide(Some(&night), Tz::UTC, utc(2024, 1, 1, 6, 10, 0))
        else {
            panic!("ran outside its window")
        };
        assert!(
            reason.contains("missed its window 01:00-05:00") && reason.contains("06:10"),
            "{reason}"
        );
        assert_eq!(
            decide(None, Tz::UTC, utc(2024, 1, 1, 6, 10, 0)),
            Decision::Run,
            "no window: runs whenever it comes due"
        );
    }

    #[test]
    fn missed_occurrences_are_not_queued() {
        let hourly = Cron::parse("0 * * * *").unwrap();
        let scheduled = utc(2024, 1, 1, 1, 0, 0);
        // Woken on time: that occurrence.
        assert_eq!(
            latest_due(&hourly, Tz::UTC, scheduled, utc(2024, 1, 1, 1, 0, 3)),
            (scheduled, 0)
        );
        // Woken 3.5 hours late (server down, laptop suspended): one run for 04:00, three passed over.
        assert_eq!(
            latest_due(&hourly, Tz::UTC, scheduled, utc(2024, 1, 1, 4, 30, 0)),
            (utc(2024, 1, 1, 4, 0, 0), 3)
        );
        // A nightly job woken after its window closed is then skipped, not run late.
        let nightly = Cron::parse("0 1 * * *").unwrap();
        let (due, _) =
            latest_due(&nightly, Tz::UTC, utc(2024, 1, 1, 1, 0, 0), utc(2024, 1, 1, 7, 0, 0));
        assert_eq!(due, utc(2024, 1, 1, 1, 0, 0));
        assert!(matches!(
            decide(Some(&Window::parse("01:00-05:00").unwrap()), Tz::UTC, utc(2024, 1, 1, 7, 0, 0)),
            Decision::Skip(_)
        ));
    }
}
