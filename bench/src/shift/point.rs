//! One grid point of the simulated shift: a converged cluster under a steady rumor load and a
//! CPU budget, run until every rumor is everywhere, and what it measured. A point stops as soon
//! as it shows itself overloaded.
//! Concurrency: plain functions; each point owns its world.

use std::time::Duration;

use bytes::Bytes;
use codec::MemberId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Profile;
use crate::sim::{self, CpuModel, NetModel, World};
use crate::util;

/// After the last publish, how long rumors may take before the point counts as losing them.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Where a grid point sits: cluster size, fanout, gossip interval.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub n: u32,
    pub fanout: usize,
    pub interval_ms: u64,
}

/// The steady load of one grid point.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub rumors: u32,
    pub per_s: f64,
    pub spacing: Spacing,
}

/// How publishes follow one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// Exponential gaps: independent publishers, the sweeps' steady load.
    Poisson,
    /// One every 1 / `per_s`, as the real cluster harness publishes: its predictions get the
    /// same load. Bursts matter where the rumors a round must carry outgrow a datagram (Ed25519
    /// at fanout 1 carries each rumor's 64-byte origin signature).
    Fixed,
}

impl Spacing {
    /// Seconds from one publish to the next, at `per_s` publishes per second on average.
    fn gap_s<R: Rng>(self, per_s: f64, rng: &mut R) -> f64 {
        match self {
            Spacing::Poisson => -rng.gen::<f64>().max(f64::MIN_POSITIVE).ln() / per_s,
            Spacing::Fixed => 1.0 / per_s,
        }
    }
}

/// One grid point's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Point {
    pub fanout: usize,
    pub gossip_interval_ms: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub delivered_fraction: f64,
    /// Mean and largest CPU use as a fraction of the budget, over the cost window: from the
    /// first publish until one retransmission span after every rumor was everywhere, as a real
    /// cluster's rumor phase counts (`None` where the source does not tell).
    pub utilisation: Option<f64>,
    pub utilisation_max: Option<f64>,
    pub shed: u64,
    /// The point stopped early: the members fell more than [`OVERLOAD_LAG`] behind on average,
    /// one shed, or one in [`STORM_ONE_IN`] was falsely suspected.
    pub overloaded: bool,
    /// Datagrams each member sent per second while the load ran and drained (real: the
    /// cluster's rumor phase).
    pub datagrams_per_member_per_s: Option<f64>,
    /// The spread over the seeds a point is the median of: their fastest and slowest p99
    /// (`None` for single runs, and when a seed lost a rumor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_range_ms: Option<(f64, f64)>,
    /// Suspicions the members raised over the cost window: probes unanswered in time. Nobody
    /// fails here, so each one is a member too slow to ack, and its suspicion and refutation
    /// compete with the rumors for the gossip and the CPU (`None` where the source does not tell).
    #[serde(default)]
    pub suspicions: Option<u64>,
}

impl Point {
    /// Not overloaded, no datagram shed, and every rumor at every member.
    pub(super) fn lossless(&self) -> bool {
        !self.overloaded
            && self.shed == 0
            && self.delivered_fraction >= 1.0
            && self.p99_ms.is_some()
    }
}

/// Members whose CPUs are booked this far ahead on average (or a member that shed a datagram)
/// disqualify the setting, and its point stops there: a backlog the whole cluster shares grows
/// without bound, and simulating it costs memory and time (at n = 10,000, gigabytes). The mean,
/// not the worst member: one member's burst (a push-pull sync of 10,000 members costs its
/// receiver seconds of an Ed25519 budget there) delays rumors, which p99 counts, but passes.
pub const OVERLOAD_LAG: Duration = Duration::from_secs(3);

/// So do false suspicions (nobody fails here) of one member in this many: a storm, in which late
/// acks raise suspicions whose updates load every member further. Over the whole grid at
/// n = 1,000 the five best Ed25519 settings raised 1–11, and the most any setting raised that
/// still kept up was 67. At n = 10,000 a storm holds about 1 GB more per thousand suspicions,
/// so waiting for the lag would not fit this machine.
pub const STORM_ONE_IN: u64 = 10;

fn suspicions(w: &World) -> u64 {
    w.cores().map(|c| c.stats().suspicions_raised).sum()
}

fn overloaded(w: &World) -> bool {
    let members = w.running().count() as u64;
    w.counters.shed > 0
        || w.mean_lag_us() > OVERLOAD_LAG.as_micros() as u64
        || suspicions(w) * STORM_ONE_IN > members
}

/// Runs one grid point: a converged cluster, `load.rumors` rumors published by random members at
/// `load.per_s` (spaced as `load.spacing` says), then until every member has every rumor or the
/// drain limit.
pub fn steady(
    profile: &Profile,
    cpu: CpuModel,
    at: Setting,
    load: Load,
    seed: u64,
) -> anyhow::Result<Point> {
    let Setting {
        n,
        fanout,
        interval_ms,
    } = at;
    let cfg = sim::core_config(
        profile.suite,
        fanout,
        Duration::from_millis(interval_ms),
        Duration::from_secs(1),
        false,
    )?;
    let g_us = interval_ms * 1000;
    // One retransmission span: how long an update keeps being sent.
    let span = g_us * u64::from(cfg.retransmit_limit(n as usize));
    let settle = span + g_us;
    let net = NetModel {
        latency_us: (50, 500),
        loss: 0.0,
        partition: None,
    };
    let (budget, background) = (cpu.budget, cpu.background);
    let mut w = World::converged(n, cfg, net, cpu, seed)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6c6f_6164);
    // Runs until `until`, a gossip interval at a time, stopping early once `done` holds or the
    // setting shows itself overloaded, even before any rumor (at n = 10,000, membership gossip
    // and push-pull syncs can overload Ed25519 alone): its backlog would grow to gigabytes.
    let run = |w: &mut World, until: u64, done: &dyn Fn(&World) -> bool| {
        w.run_in_steps(until, g_us, |w| done(w) || overloaded(w));
    };
    run(&mut w, settle, &|_| false);
    let start = w.now_us();
    let busy0 = w.busy_us();
    let sent0 = w.counters.sent;
    let suspicions0 = suspicions(&w);
    let mut keys: Vec<(MemberId, u64)> = Vec::with_capacity(load.rumors as usize);
    let payload = Bytes::from(vec![0x5a; sim::PAYLOAD_LEN]);
    let mut t = start as f64;
    for _ in 0..load.rumors {
        t += load.spacing.gap_s(load.per_s, &mut rng) * 1e6;
        run(&mut w, t as u64, &|_| false);
        if overloaded(&w) {
            break;
        }
        let from = rng.gen_range(0..n);
        if let Some(seq) = w.publish(from, payload.clone()) {
            keys.push((from, seq));
        }
    }
    let end_load = w.now_us();
    let deadline = end_load + u64::try_from(DRAIN_LIMIT.as_micros()).unwrap_or(u64::MAX);
    let everyone = n - 1;
    let complete = |w: &World| {
        keys.iter()
            .all(|k| w.rumors().get(k).is_some_and(|t| t.delivered >= everyone))
    };
    // The cost window, as the real cluster's rumor phase measures it: until every rumor is
    // everywhere (at most one retransmission span after the last publish), then one more span
    // for the last retransmissions.
    run(&mut w, end_load + span, &complete);
    let last_retransmissions = w.now_us() + span;
    run(&mut w, last_retransmissions, &|_| false);
    let end_cost = w.now_us().max(start + 1);
    let busy1 = w.busy_us();
    let sent1 = w.counters.sent;
    let suspicions = suspicions(&w) - suspicions0;
    run(&mut w, deadline, &complete);
    let mut lat: Vec<u64> = Vec::new();
    let mut delivered = 0u64;
    for k in &keys {
        if let Some(t) = w.rumors().get(k) {
            delivered += u64::from(t.delivered.min(everyone));
            if t.delivered >= everyone {
                lat.push(t.last_us - t.published_us);
            }
        }
    }
    lat.sort_unstable();
    let window = (end_cost - start) as f64;
    let background = background / budget;
    let util: Vec<f64> = busy1
        .iter()
        .zip(&busy0)
        .map(|(b1, b0)| (b1 - b0) / window + background)
        .collect();
    // Rumors never published (the point stopped when overloaded) count as lost.
    let expected = u64::from(load.rumors) * u64::from(everyone);
    // A percentile is defined only when every rumor reached everyone.
    let all = lat.len() == load.rumors as usize;
    let ms = |p| {
        util::percentile(&lat, p)
            .filter(|_| all)
            .map(|us| us as f64 / 1000.0)
    };
    Ok(Point {
        fanout,
        gossip_interval_ms: interval_ms,
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        delivered_fraction: if expected == 0 {
            0.0
        } else {
            delivered as f64 / expected as f64
        },
        utilisation: Some(util.iter().sum::<f64>() / f64::from(n)),
        utilisation_max: Some(util.iter().copied().fold(0.0, f64::max)),
        shed: w.counters.shed,
        overloaded: overloaded(&w),
        datagrams_per_member_per_s: Some((sent1 - sent0) as f64 / f64::from(n) / (window / 1e6)),
        p99_range_ms: None,
        suspicions: Some(suspicions),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_spacing_is_the_harness_schedule_and_poisson_only_its_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let gaps = |s: Spacing, rng: &mut StdRng| -> Vec<f64> {
            (0..20_000).map(|_| s.gap_s(10.0, rng)).collect()
        };
        assert!(gaps(Spacing::Fixed, &mut rng).iter().all(|g| *g == 0.1));
        let p = gaps(Spacing::Poisson, &mut rng);
        let mean = p.iter().sum::<f64>() / p.len() as f64;
        assert!((mean - 0.1).abs() < 0.005, "Poisson mean gap {mean}");
        // Exponential gaps: about 63 % are shorter than the mean (1 - 1/e).
        let short = p.iter().filter(|g| **g < 0.1).count() as f64 / p.len() as f64;
        assert!((short - 0.632).abs() < 0.02, "share of short gaps {short}");
    }
}
