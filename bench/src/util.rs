//! Small helpers shared by the benchmarks: JSON output, report folders, peak RSS.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    // Written beside and renamed over: a run stopped mid-write leaves the last whole file, which
    // a long sweep's `--resume` reads.
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    std::fs::write(&part, text + "\n").with_context(|| format!("writing {}", part.display()))?;
    std::fs::rename(&part, path)
        .with_context(|| format!("renaming {} to {}", part.display(), path.display()))
}

/// `reports/<UTC timestamp>/`, created.
pub fn report_dir() -> anyhow::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = PathBuf::from("reports").join(utc_stamp(secs));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `YYYYMMDDTHHMMSSZ` for unix seconds (civil-from-days, Howard Hinnant's algorithm).
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Peak resident set size of this process in bytes (`VmHWM` of /proc/self/status), 0 if unknown.
pub fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// A `kB` field of /proc/self/status, 0 if unknown.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it; `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Current resident set size of this process in bytes (`VmRSS`), 0 if unknown.
pub fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// The items of `all` named in `names` (all of them without a filter); an unknown name is an
/// error that lists the known ones.
pub fn pick<T: Copy>(
    all: &[T],
    names: Option<&[String]>,
    what: &str,
    name: impl Fn(T) -> String,
) -> anyhow::Result<Vec<T>> {
    let Some(names) = names else {
        return Ok(all.to_vec());
    };
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|x| name(*x) == *n)
                .with_context(|| {
                    let known: Vec<String> = all.iter().map(|x| name(*x)).collect();
                    format!(
                        "unknown {what} {n:?}; expected one of: {}",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_stamp_known_dates() {
        assert_eq!(super::utc_stamp(0), "19700101T000000Z");
        assert_eq!(super::utc_stamp(1_795_000_000), "20261118T110640Z");
    }
}
