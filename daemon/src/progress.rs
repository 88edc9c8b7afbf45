//! Live progress on stderr: one line redrawn in place on a terminal (an indicatif bar or
//! spinner), a plain `progress: <message>` line per update otherwise (logs, pipes, CI), so
//! that stdout keeps only the command's output.

use std::io::IsTerminal;
use std::time::Duration;

pub struct Line {
    bar: Option<indicatif::ProgressBar>,
}

impl Line {
    /// A bar that fills up to `total` (in the caller's unit), drawn with `template`.
    pub fn bar(total: u64, template: &str) -> Line {
        Line::on_terminal(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(style(template, indicatif::ProgressStyle::default_bar));
            bar
        })
    }

    /// A spinner with the time elapsed and the latest message, redrawn while nothing new comes.
    pub fn spinner(message: &str) -> Line {
        Line::on_terminal(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(style(
                "{spinner} {elapsed:>4} {msg}",
                indicatif::ProgressStyle::default_spinner,
            ));
            bar.set_message(message.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        })
    }

    fn on_terminal(make: impl FnOnce() -> indicatif::ProgressBar) -> Line {
        Line { bar: std::io::stderr().is_terminal().then(make) }
    }

    /// Shows `message` (printable and on one line: it may come from the server), and on a bar
    /// moves it to `position`.
    pub fn show(&self, message: String, position: Option<u64>) {
        let message = crate::output::one_line(&message);
        match &self.bar {
            Some(bar) => {
                if let Some(position) = position {
                    bar.set_position(position);
                }
                bar.set_message(message);
            }
            None => eprintln!("{}", plain(&message)),
        }
    }

    /// Clears the line from a terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str, fallback: fn() -> indicatif::ProgressStyle) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| fallback())
}

/// A message as a line of its own, when stderr is not a terminal.
pub fn plain(message: &str) -> String {
    format!("progress: {message}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_lines_say_progress_first() {
        assert_eq!(
            super::plain("planned 3 of 9 statements"),
            "progress: planned 3 of 9 statements"
        );
    }

    #[test]
    fn the_templates_parse() {
        for template in ["{spinner} {elapsed:>4} {msg}", "{bar:24} {elapsed:>4}/{duration:4} {msg}"]
        {
            assert!(indicatif::ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
