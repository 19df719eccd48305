//! Protocol configuration, with memberlist's LAN defaults, and the bounds derived from it.
//! References: hashicorp/memberlist `DefaultLANConfig`, `retransmitLimit`, `suspicionTimeout`,
//! `pushPullScale` (util.go); Lifeguard (Dadgar, Phillips, Currey, 2018) §IV.B for the suspicion
//! timeout that shrinks with independent confirmations.
//! Concurrency: plain data; each core owns its copy.

use std::time::Duration;

use codec::{Packet, Suite, DEFAULT_MTU};

use super::witness::Tolerance;

/// memberlist `DefaultLANConfig` ProbeInterval.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// memberlist ProbeTimeout: half the interval leaves the other half for indirect probes.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// memberlist PushPullInterval.
const PUSH_PULL_INTERVAL: Duration = Duration::from_secs(30);
/// memberlist's cluster size up to which the push-pull interval is not scaled.
const PUSH_PULL_SCALE_THRESHOLD: usize = 32;
/// Room for one full membership's updates at the cluster sizes rumor targets on real hosts
/// (the 10,000-member simulator overflows it only while everyone joins at once).
const BROADCAST_QUEUE_MAX: usize = 4096;
/// Relays in flight for others: each member is asked by about k others per probe period, so
/// 64 absorbs a burst of 20 periods' requests while bounding a flooder's effect.
const MAX_RELAYS: usize = 64;
/// SWIM's expected first detection is e/(e−1) ≈ 1.58 probe periods; 5 periods bound it with high
/// probability (the detection bound).
const DETECT_PROBE_PERIODS: u32 = 5;

/// Longest configurable period, and largest multiplier or count: every derived duration (a
/// period times multipliers times log n) stays far inside `Duration`, so none can overflow.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
const MAX_FACTOR: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be between 1 ms and 24 h")]
    Period(&'static str),
    #[error("{what} must be between {min} and {MAX_FACTOR}")]
    Factor { what: &'static str, min: usize },
    #[error("probe timeout {timeout:?} must be shorter than the probe interval {interval:?}")]
    ProbeTimeout {
        timeout: Duration,
        interval: Duration,
    },
    #[error("MTU: {0}")]
    Mtu(#[from] codec::WireError),
    #[error("authority layer: {0}")]
    Authority(String),
}

/// Probability that a given member misses a given rumor, which the rumor retransmit limit is
/// derived from (`Config::rumor_retransmit_limit`): about one miss per 10^6 (member, rumor) pairs.
pub const RUMOR_MISS_TARGET: f64 = 1e-6;

/// Tunables of one core. Durations are virtual: the core never reads a clock.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster's suite: decides datagram overhead (packing) and whether rumors are signed.
    pub suite: Suite,
    /// Hash of the cluster name, bound into origin signatures.
    pub cluster_tag: u32,
    /// Largest sealed datagram; messages are packed under it with codec's `Packet`.
    pub mtu: usize,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// SWIM's k: members asked to probe on our behalf when a direct probe goes unanswered.
    pub indirect_probes: usize,
    pub gossip_interval: Duration,
    pub fanout: usize,
    /// Each broadcast is sent `retransmit_mult · ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Lifeguard's α: minimum suspicion timeout = α · max(1, log10 n) · probe interval.
    pub suspicion_mult: u32,
    /// Lifeguard's β: maximum suspicion timeout = β · minimum.
    pub suspicion_max_mult: u32,
    /// Lifeguard's K: independent confirmations that shrink a suspicion to its minimum.
    pub suspicion_confirmations: u32,
    /// Lifeguard's S: the local health multiplier stretches timeouts up to (S + 1)×.
    pub max_awareness: u32,
    /// Push-pull state sync period at n ≤ 32; scaled up with log2 n beyond, as memberlist does.
    pub push_pull_interval: Duration,
    /// Bound on queued broadcasts; the most-transmitted are dropped first. About 220 bytes per
    /// item: the memory knob of a many-core simulation, whose joiners each queue what they learn.
    pub broadcast_queue_max: usize,
    /// Bound on probes relayed at once for other members (ping-req).
    pub max_relays: usize,
    /// Broadcasts ride along probes and acks (memberlist). Off: they move only in gossip rounds,
    /// the synchronous model the simulator validates against the rumor-spreading formulas.
    pub piggyback: bool,
    /// Gossip rounds at multiples of the gossip interval on every member, instead of a random
    /// phase per member (synchronous rounds, for the simulator).
    pub aligned_gossip: bool,
    /// Rumors are pushed every round until the run ends instead of a limited number of times
    /// (the "push until all are informed" model; membership updates keep their limit).
    pub unlimited_rumor_retransmit: bool,
    /// The quorum authority layer (issue 6): signed membership statements, deaths committed only
    /// by witness certificates, equivocators excluded. `None`: gossip's view is the decision.
    pub authority: Option<Tolerance>,
    /// Rumors accepted per origin per gossip interval (`None`: no cap). Past it, an origin's
    /// rumors are dropped before their signatures are checked.
    pub origin_rumor_cap: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            suite: Suite::None,
            cluster_tag: 0,
            mtu: DEFAULT_MTU,
            probe_interval: PROBE_INTERVAL,
            probe_timeout: PROBE_TIMEOUT,
            // memberlist IndirectChecks, GossipInterval, GossipNodes, RetransmitMult, SuspicionMult,
            // SuspicionMaxTimeoutMult, AwarenessMaxMultiplier; Lifeguard's K = 3.
            indirect_probes: 3,
            gossip_interval: Duration::from_millis(200),
            fanout: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_mult: 6,
            suspicion_confirmations: 3,
            max_awareness: 8,
            push_pull_interval: PUSH_PULL_INTERVAL,
            broadcast_queue_max: BROADCAST_QUEUE_MAX,
            max_relays: MAX_RELAYS,
            piggyback: true,
            aligned_gossip: false,
            unlimited_rumor_retransmit: false,
            authority: None,
            origin_rumor_cap: None,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (d, what) in [
            (self.probe_interval, "probe interval"),
            (self.probe_timeout, "probe timeout"),
            (self.gossip_interval, "gossip interval"),
            (self.push_pull_interval, "push-pull interval"),
        ] {
            if d.as_millis() == 0 || d > MAX_PERIOD {
                return Err(ConfigError::Period(what));
            }
        }
        for (v, min, what) in [
            (self.fanout, 1, "fanout"),
            (self.indirect_probes, 0, "indirect probes"),
            (self.retransmit_mult as usize, 1, "retransmit mult"),
            (self.suspicion_mult as usize, 1, "suspicion mult"),
            (self.suspicion_max_mult as usize, 1, "suspicion max mult"),
            (
                self.suspicion_confirmations as usize,
                0,
                "suspicion confirmations",
            ),
            (self.max_awareness as usize, 0, "max awareness"),
        ] {
            if !(min..=MAX_FACTOR).contains(&v) {
                return Err(ConfigError::Factor { what, min });
            }
        }
        if self.origin_rumor_cap == Some(0) {
            return Err(ConfigError::Factor {
                what: "origin rumor cap",
                min: 1,
            });
        }
        if self.broadcast_queue_max == 0 {
            return Err(ConfigError::Factor {
                what: "broadcast queue bound",
                min: 1,
            });
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeout {
                timeout: self.probe_timeout,
                interval: self.probe_interval,
            });
        }
        if self.authority.is_some() && !self.suite.per_member_provenance() {
            return Err(ConfigError::Authority(format!(
                "suite {} has no per-member provenance: every holder of the shared cluster key can sign as any member, so one liar could pose as a whole quorum of witnesses (use ed25519 or aead+ed25519)",
                self.suite
            )));
        }
        Packet::new(self.suite, self.mtu)?;
        Ok(())
    }

    /// memberlist `retransmitLimit`: `mult · ceil(log10(n + 1))`.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let scale = ((n as f64) + 1.0).log10().ceil() as u32;
        self.retransmit_mult * scale.max(1)
    }

    /// Transmissions of each application rumor. Membership updates are repaired by push-pull
    /// sync; rumors are not, so their limit is set by a delivery target instead: a member misses
    /// a rumor only if none of the ≈ (n − 1)·L sends reaches it, P ≈ e^−L, so L ≥ ln(1 / p). With
    /// p = [`RUMOR_MISS_TARGET`] that is 14 (memberlist's formula gives 8 at n = 32, and the
    /// 32-node loopback cluster then lost about one (member, rumor) pair in 1,600). Never fewer
    /// than membership updates get.
    pub fn rumor_retransmit_limit(&self, n: usize) -> u32 {
        let by_target = (1.0 / RUMOR_MISS_TARGET).ln().ceil() as u32;
        self.retransmit_limit(n).max(by_target)
    }

    /// Lifeguard minimum suspicion timeout: `α · max(1, log10 n) · T`.
    pub fn suspicion_min(&self, n: usize) -> Duration {
        let scale = (n.max(1) as f64).log10().max(1.0);
        self.probe_interval
            .mul_f64(self.suspicion_mult as f64 * scale)
    }

    /// Lifeguard maximum suspicion timeout: `β · min`.
    pub fn suspicion_max(&self, n: usize) -> Duration {
        self.suspicion_min(n) * self.suspicion_max_mult
    }

    /// Confirmations that bring a suspicion to its minimum: K, but never more than the other
    /// members that could confirm (n minus the suspect and us), as memberlist does.
    pub fn expected_confirmations(&self, n: usize) -> u32 {
        let others = n.saturating_sub(2) as u32;
        self.suspicion_confirmations.min(others)
    }

    /// Lifeguard: `max(min, max − (max − min) · ln(c + 1) / ln(K + 1))` after `c` confirmations.
    pub fn suspicion_timeout(&self, n: usize, confirmations: u32) -> Duration {
        let (min, max) = (self.suspicion_min(n), self.suspicion_max(n));
        let k = self.expected_confirmations(n);
        if k == 0 {
            return min;
        }
        let frac = ((confirmations as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
        let raw = max.as_secs_f64() - (max - min).as_secs_f64() * frac;
        Duration::from_millis((raw * 1000.0).round().max(0.0) as u64).max(min)
    }

    /// memberlist `pushPullScale`: one more interval per doubling beyond 32 members, so the
    /// cluster-wide sync load stays flat as n grows.
    pub fn push_pull_period(&self, n: usize) -> Duration {
        if n <= PUSH_PULL_SCALE_THRESHOLD {
            return self.push_pull_interval;
        }
        let doublings =
            ((n as f64).log2() - (PUSH_PULL_SCALE_THRESHOLD as f64).log2()).ceil() as u32;
        self.push_pull_interval * (doublings + 1)
    }

    /// Time within which every live member should have marked a crashed member dead: detection
    /// (5 probe periods and a probe timeout), Lifeguard's longest suspicion, then the rounds the
    /// Dead broadcast needs to reach everyone. With the authority layer, a death is committed by
    /// a certificate: the suspicion must first reach the witnesses and their votes a collector,
    /// two more broadcasts' worth of rounds.
    pub fn detect_bound(&self, n: usize) -> Duration {
        let broadcasts = if self.authority.is_some() { 3 } else { 1 };
        self.probe_interval * DETECT_PROBE_PERIODS
            + self.probe_timeout
            + self.suspicion_max(n)
            + self.gossip_interval * self.retransmit_limit(n) * broadcasts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rumor_limit_meets_the_delivery_target() {
        let c = Config::default();
        assert_eq!(c.retransmit_limit(32), 8);
        assert_eq!(c.rumor_retransmit_limit(32), 14);
        // e^-L per (member, rumor) pair is at most the target
        assert!((-f64::from(c.rumor_retransmit_limit(32))).exp() <= RUMOR_MISS_TARGET);
        // large clusters keep memberlist's (larger) limit
        assert_eq!(
            c.rumor_retransmit_limit(100_000),
            c.retransmit_limit(100_000)
        );
    }

    #[test]
    fn lifeguard_numbers() {
        let c = Config::default();
        assert_eq!(c.retransmit_limit(20), 8);
        assert_eq!(c.retransmit_limit(9), 4);
        assert_eq!(c.suspicion_min(10), Duration::from_secs(4));
        assert_eq!(c.suspicion_max(10), Duration::from_secs(24));
        assert_eq!(c.suspicion_timeout(10, 0), Duration::from_secs(24));
        assert_eq!(c.suspicion_timeout(10, 3), Duration::from_secs(4));
        let one = c.suspicion_timeout(10, 1);
        assert!(one < Duration::from_secs(24) && one > Duration::from_secs(4));
        assert_eq!(c.suspicion_timeout(2, 0), c.suspicion_min(2));
        assert_eq!(c.push_pull_period(32), Duration::from_secs(30));
        assert_eq!(c.push_pull_period(10_000), Duration::from_secs(300));
        assert_eq!(
            c.detect_bound(10),
            Duration::from_millis(5000 + 500 + 24_000 + 8 * 200)
        );
        assert!(c.validate().is_ok());
        assert!(Config {
            probe_timeout: Duration::from_secs(2),
            ..c.clone()
        }
        .validate()
        .is_err());
        let absurd = Config {
            suspicion_mult: u32::MAX,
            ..c.clone()
        };
        assert!(matches!(absurd.validate(), Err(ConfigError::Factor { .. })));
        let absurd = Config {
            gossip_interval: Duration::MAX,
            ..c
        };
        assert_eq!(
            absurd.validate(),
            Err(ConfigError::Period("gossip interval"))
        );
    }
}
