//! Progress bars for long work (records, training steps, answers, judgments): one style, with
//! rate and ETA, on stderr, hidden when stderr is not a terminal.
use indicatif::{ProgressBar, ProgressStyle};

/// A bar with rate and ETA on stderr, counting `unit`s (records, steps, answers, judgments);
/// indicatif hides it when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{msg:>8}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}");
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
