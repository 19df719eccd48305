//! A CPU budget for a set of running processes: a cgroup with a CFS bandwidth quota, so a real
//! loopback cluster can be held to the small share of a core per member that the simulator's CPU
//! model gives each member, and CPU becomes what gossip settings compete for.
//!
//! Reference: the kernel's Documentation/scheduler/sched-bwc.rst (`cpu.cfs_quota_us` under
//! cgroup v1, `cpu.max` under v2) and Documentation/admin-guide/cgroup-v2.rst. The group is made
//! under the controller's mount root (the root cgroup is exempt from v2's rule against processes
//! in inner groups) and its processes go back to this process's own cgroup on drop.
//! Concurrency: owned by one thread; the group is removed when the value is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

/// The kernel's bounds on a CFS quota (sched-bwc.rst): at least 1 ms, periods at most 1 s.
const MIN_QUOTA_US: f64 = 1_000.0;
const MAX_PERIOD_US: f64 = 1_000_000.0;
/// The period when the budget allows it: short, so a throttled group waits milliseconds, not
/// the default 100 ms that would stand out against a 200 ms gossip interval.
const PREFERRED_PERIOD_US: f64 = 10_000.0;

/// Which cgroup files hold the quota, the member processes and the CPU time used.
#[derive(Debug)]
enum Layout {
    /// cgroup v2: one group; `cpu.max`, `cpu.stat` (`usage_usec`, `throttled_usec`).
    V2 { group: PathBuf, home: PathBuf },
    /// cgroup v1: a `cpu` group for the quota and throttling, and a `cpuacct` group for usage
    /// (the same directory when the two controllers share a mount).
    V1 {
        cpu: PathBuf,
        cpu_home: PathBuf,
        acct: PathBuf,
        acct_home: PathBuf,
    },
}

/// A live cgroup limiting its processes to `cores` cores in all.
#[derive(Debug)]
pub struct CpuBudget {
    cores: f64,
    layout: Layout,
    pids: Vec<u32>,
}

/// CPU time the group used and the time it spent throttled, both in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub throttled_s: f64,
}

impl CpuBudget {
    /// Moves `pids` into a new group limited to `cores` cores in all.
    pub fn limit(pids: &[u32], cores: f64) -> anyhow::Result<CpuBudget> {
        let mounts =
            std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
        let own =
            std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        CpuBudget::limit_under(&mounts, &own, pids, cores)
    }

    /// `limit` with the mount table and this process's groups given (`/proc/self/mounts` and
    /// `/proc/self/cgroup` in their formats), so the file protocol of each layout can be tested.
    fn limit_under(mounts: &str, own: &str, pids: &[u32], cores: f64) -> anyhow::Result<CpuBudget> {
        let (period, quota) = quota_us(cores)?;
        let name = group_name();
        let layout = if let Some(root) = v2_root(mounts) {
            let group = root.join(&name);
            // Members of a v2 group get the cpu controller only if the parent hands it down.
            write(&root.join("cgroup.subtree_control"), "+cpu")?;
            make(&group)?;
            Layout::V2 {
                group,
                home: root.join(own_path(own, "").unwrap_or_default()),
            }
        } else {
            let cpu_root = v1_root(mounts, "cpu")
                .context("no cgroup cpu controller is mounted (neither v2 nor v1)")?;
            let acct_root =
                v1_root(mounts, "cpuacct").context("no cgroup v1 cpuacct controller is mounted")?;
            let cpu = cpu_root.join(&name);
            let acct = acct_root.join(&name);
            make(&cpu)?;
            if acct != cpu {
                make(&acct)?;
            }
            Layout::V1 {
                cpu_home: cpu_root.join(own_path(own, "cpu").unwrap_or_default()),
                acct_home: acct_root.join(own_path(own, "cpuacct").unwrap_or_default()),
                cpu,
                acct,
            }
        };
        let mut budget = CpuBudget {
            cores,
            layout,
            pids: Vec::new(),
        };
        // The groups exist from here on: a failure below drops `budget`, which removes them.
        match &budget.layout {
            Layout::V2 { group, .. } => {
                write(&group.join("cpu.max"), &format!("{quota} {period}"))?
            }
            Layout::V1 { cpu, .. } => {
                write(&cpu.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        for &pid in pids {
            for (group, _) in budget.homes() {
                write(&group.join("cgroup.procs"), &pid.to_string())?;
            }
            budget.pids.push(pid);
        }
        Ok(budget)
    }

    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// CPU used and time throttled since the group was made.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        match &self.layout {
            Layout::V2 { group, .. } => {
                let stat = read(&group.join("cpu.stat"))?;
                let field = |k: &str| {
                    stat_field(&stat, k)
                        .with_context(|| format!("no {k} in {}", group.join("cpu.stat").display()))
                };
                Ok(Usage {
                    cpu_s: field("usage_usec")? as f64 / 1e6,
                    throttled_s: field("throttled_usec")? as f64 / 1e6,
                })
            }
            Layout::V1 { cpu, acct, .. } => {
                let usage = acct.join("cpuacct.usage");
                let ns: u64 = read(&usage)?
                    .trim()
                    .parse()
                    .with_context(|| format!("parsing {}", usage.display()))?;
                let stat = read(&cpu.join("cpu.stat"))?;
                let throttled = stat_field(&stat, "throttled_time").with_context(|| {
                    format!("no throttled_time in {}", cpu.join("cpu.stat").display())
                })?;
                Ok(Usage {
                    cpu_s: ns as f64 / 1e9,
                    throttled_s: throttled as f64 / 1e9,
                })
            }
        }
    }

    /// Each group of this budget with the group its processes came from.
    fn homes(&self) -> Vec<(&Path, &Path)> {
        match &self.layout {
            Layout::V2 { group, home } => vec![(group, home)],
            Layout::V1 {
                cpu,
                cpu_home,
                acct,
                ..
            } if cpu == acct => vec![(cpu, cpu_home)],
            Layout::V1 {
                cpu,
                cpu_home,
                acct,
                acct_home,
            } => vec![(cpu, cpu_home), (acct, acct_home)],
        }
    }
}

impl Drop for CpuBudget {
    fn drop(&mut self) {
        for (group, home) in self.homes() {
            // Processes that already exited are gone from the group; the rest go home first,
            // because a group with members cannot be removed.
            for pid in &self.pids {
                let _ = std::fs::write(home.join("cgroup.procs"), pid.to_string());
            }
            if let Err(e) = std::fs::remove_dir(group) {
                eprintln!(
                    "rumor-bench: could not remove cgroup {}: {e}",
                    group.display()
                );
            }
        }
    }
}

/// (period, quota) in µs for `cores`: the preferred period, lengthened until the quota is at
/// least the kernel's minimum.
fn quota_us(cores: f64) -> anyhow::Result<(u64, u64)> {
    let min_cores = MIN_QUOTA_US / MAX_PERIOD_US;
    if !cores.is_finite() || cores < min_cores {
        bail!(
            "a CPU budget of {cores} cores is below the kernel's least quota ({min_cores} cores)"
        );
    }
    let period = PREFERRED_PERIOD_US
        .max(MIN_QUOTA_US / cores)
        .min(MAX_PERIOD_US);
    Ok((period.round() as u64, (cores * period).round() as u64))
}

fn group_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "rumor-bench-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The mount point of the v2 hierarchy when it offers the cpu controller.
fn v2_root(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let root = PathBuf::from(f.get(1)?);
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).ok()?;
        (f.get(2) == Some(&"cgroup2") && controllers.split_whitespace().any(|c| c == "cpu"))
            .then_some(root)
    })
}

/// The mount point of the v1 hierarchy carrying `controller` among its options.
fn v1_root(mounts: &str, controller: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let has = f.get(3)?.split(',').any(|o| o == controller);
        (f.get(2) == Some(&"cgroup") && has).then(|| PathBuf::from(f[1]))
    })
}

/// This process's group in the hierarchy of `controller` ("" for v2), relative to its root,
/// from /proc/self/cgroup lines `id:controllers:/path`.
fn own_path(own: &str, controller: &str) -> Option<PathBuf> {
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, list, path) = (f.next()?, f.next()?, f.next()?);
        let matches = if controller.is_empty() {
            list.is_empty()
        } else {
            list.split(',').any(|c| c == controller)
        };
        matches.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

fn stat_field(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn make(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir(dir).with_context(|| {
        format!(
            "creating cgroup {} (a CPU budget needs a writable cgroup cpu controller, usually root)",
            dir.display()
        )
    })
}

fn write(file: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(file, value).with_context(|| format!("writing {value:?} to {}", file.display()))
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::WorkDir;

    #[test]
    fn quota_keeps_the_kernel_minimum_and_the_share() {
        assert_eq!(quota_us(0.5).unwrap(), (10_000, 5_000));
        // 0.05 cores: a 10 ms period would give a 0.5 ms quota, under the minimum.
        assert_eq!(quota_us(0.05).unwrap(), (20_000, 1_000));
        assert!(quota_us(0.0001).is_err());
        assert!(quota_us(f64::NAN).is_err());
    }

    /// A directory `name` under the stand-in for the cgroup mounts.
    fn dir(fake: &WorkDir, name: &str) -> PathBuf {
        let dir = fake.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A real cgroup's interface files vanish with `rmdir`; a plain directory's must go first.
    fn remove_files(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }

    fn text(file: &Path) -> String {
        std::fs::read_to_string(file).unwrap()
    }

    #[test]
    fn a_v2_budget_writes_cpu_max_reads_cpu_stat_and_sends_its_processes_home() {
        let fake = WorkDir::new(None).unwrap();
        let root = dir(&fake, "unified");
        std::fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let home = dir(&fake, "unified/init.scope");
        let mounts = format!(
            "cgroup /x/memory cgroup rw,memory 0 0\ncgroup2 {} cgroup2 rw,nosuid 0 0\n",
            root.display()
        );
        let budget =
            CpuBudget::limit_under(&mounts, "4:memory:/\n0::/init.scope\n", &[4242], 0.3).unwrap();
        let Layout::V2 { group, .. } = &budget.layout else {
            panic!("a v2 mount offering cpu gave {:?}", budget.layout);
        };
        let group = group.clone();
        assert_eq!(text(&root.join("cgroup.subtree_control")), "+cpu");
        assert_eq!(text(&group.join("cpu.max")), "3000 10000");
        assert_eq!(text(&group.join("cgroup.procs")), "4242");

        std::fs::write(
            group.join("cpu.stat"),
            "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n\
             nr_periods 10\nnr_throttled 2\nthrottled_usec 250000\n",
        )
        .unwrap();
        let usage = budget.usage().unwrap();
        assert_eq!((usage.cpu_s, usage.throttled_s), (1.5, 0.25));

        remove_files(&group);
        drop(budget);
        assert!(!group.exists(), "the group outlived its budget");
        assert_eq!(text(&home.join("cgroup.procs")), "4242");
    }

    #[test]
    fn a_v1_budget_splits_quota_and_accounting_across_their_mounts() {
        let fake = WorkDir::new(None).unwrap();
        let cpu_root = dir(&fake, "cpu");
        let acct_root = dir(&fake, "cpuacct");
        // A v2 mount without the cpu controller, as on hybrid hosts, must not be chosen.
        let unified = dir(&fake, "unified");
        std::fs::write(unified.join("cgroup.controllers"), "hugetlb\n").unwrap();
        let mounts = format!(
            "cgroup2 {} cgroup2 rw 0 0\ncgroup {} cgroup rw,cpu 0 0\ncgroup {} cgroup rw,cpuacct 0 0\n",
            unified.display(),
            cpu_root.display(),
            acct_root.display()
        );
        let budget =
            CpuBudget::limit_under(&mounts, "2:cpuacct:/\n1:cpu:/\n0::/\n", &[4242], 0.05).unwrap();
        let Layout::V1 { cpu, acct, .. } = &budget.layout else {
            panic!("v1 mounts gave {:?}", budget.layout);
        };
        let (cpu, acct) = (cpu.clone(), acct.clone());
        assert_eq!(text(&cpu.join("cpu.cfs_period_us")), "20000");
        assert_eq!(text(&cpu.join("cpu.cfs_quota_us")), "1000");
        assert_eq!(text(&cpu.join("cgroup.procs")), "4242");
        assert_eq!(text(&acct.join("cgroup.procs")), "4242");

        std::fs::write(acct.join("cpuacct.usage"), "2000000000\n").unwrap();
        std::fs::write(
            cpu.join("cpu.stat"),
            "nr_periods 5\nnr_throttled 1\nthrottled_time 125000000\n",
        )
        .unwrap();
        let usage = budget.usage().unwrap();
        assert_eq!((usage.cpu_s, usage.throttled_s), (2.0, 0.125));

        remove_files(&cpu);
        remove_files(&acct);
        drop(budget);
        assert!(
            !cpu.exists() && !acct.exists(),
            "a group outlived its budget"
        );
        assert_eq!(text(&cpu_root.join("cgroup.procs")), "4242");
        assert_eq!(text(&acct_root.join("cgroup.procs")), "4242");
    }

    #[test]
    fn mounts_and_own_groups_are_found() {
        let mounts = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\n";
        assert_eq!(
            v1_root(mounts, "cpu"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            v1_root(mounts, "cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(v1_root(mounts, "memory"), None);
        let own = "4:memory:/x\n3:cpu,cpuacct:/user.slice\n0::/init.scope\n";
        assert_eq!(own_path(own, "cpu"), Some(PathBuf::from("user.slice")));
        assert_eq!(own_path(own, ""), Some(PathBuf::from("init.scope")));
        assert_eq!(
            stat_field("usage_usec 1234\nuser_usec 1000\n", "usage_usec"),
            Some(1234)
        );
    }
}
