//! Progress bars for the long runs: the default report's stages and a shift sweep's simulated
//! runs (a `--full` sweep at n = 10,000 takes most of an hour per suite). On stderr; indicatif
//! draws nothing when stderr is not a terminal, so logs and CI output stay plain lines.
//! Concurrency: a bar is `Sync`; the sweep's threads tick the same one.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps headed `what`, with elapsed time and an estimate of what is left.
pub fn bar(len: u64, what: String) -> ProgressBar {
    let b = ProgressBar::new(len).with_prefix(what);
    let template = "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, about {eta} left)";
    if let Ok(style) = ProgressStyle::with_template(template) {
        b.set_style(style.progress_chars("=> "));
    }
    b
}
