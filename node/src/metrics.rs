//! Node counters, shared by the io, verify and core threads, and their Prometheus text form.
//! Names are stable: `rumor-bench` and dashboards read them (`rumor_<name>` in Prometheus).
//!
//! Concurrency: relaxed atomics; a reader sees each counter monotone, not a consistent cut.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Every counter of a node.
        #[derive(Default, Debug)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// (name, help, value) of every counter.
            pub fn all(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    datagrams_in: "Datagrams received.",
    bytes_in: "Bytes received.",
    datagrams_out: "Datagrams sent.",
    bytes_out: "Bytes sent.",
    send_errors: "Datagrams the kernel refused to send.",
    accepted: "Datagrams that passed every check and reached the protocol core.",
    drop_malformed: "Dropped: header did not parse, or another suite or cluster.",
    drop_truncated: "Dropped: larger than the receive buffer.",
    drop_unknown_sender: "Dropped before verification: sender not on the roster.",
    drop_rate_limited: "Dropped before verification: sender or origin over its rate.",
    drop_duplicate_shed: "Dropped before verification: duplicate under overload.",
    drop_heavy_sender: "Dropped before verification: heaviest sender under overload.",
    drop_queue_full: "Dropped before verification: verification queue full.",
    drop_auth: "Dropped: authentication (MAC, AEAD or signature) failed.",
    drop_replay: "Dropped: replayed, stale epoch or outside the freshness window.",
    drop_bad_body: "Dropped: authenticated body that does not decode.",
    drop_bad_origin_signature: "Messages dropped: an end-to-end signature (rumor origin; with the authority layer also statements, certificates, proofs) missing or invalid.",
    drop_core_backlog: "Verified datagrams dropped because the core's inbox was full.",
    shed: "Datagrams shed before verification, all reasons.",
    verified: "Datagrams authenticated by the verification pool.",
    verifications: "Signature checks paid by the verification pool, every item of every batch attempt.",
    dedup_hits: "Datagrams whose verdict came from an identical copy.",
    origin_verifications: "End-to-end signatures verified: rumor origins and, with the authority layer, statements, certificate votes and proof halves (once per unique statement).",
    rumors_published: "Rumors published by this node.",
    rumors_delivered: "Rumors delivered to the application (including our own).",
    members_alive: "Members this node sees alive (gauge).",
    members_suspect: "Members this node sees suspect (gauge).",
    members_dead: "Members this node sees dead or left (gauge).",
    dissemination_ms_sum: "Sum over delivered remote rumors of delivery time minus origin timestamp, ms.",
    verify_queue_wait_p99_us: "Verification queue wait, 99th percentile (gauge, us).",
    verify_batch_p99_us: "Verification batch time, 99th percentile (gauge, us).",
    probe_failures: "Probes this node sent that no ack answered in time, directly or through relays.",
    suspicions_raised: "Suspicions this node raised itself: after its own failed probe, or as a witness confirming one.",
    refutations: "Accusations against this node it refuted with a higher incarnation.",
    reconnects: "Syncs sent to a member this node holds dead, in case a partition has healed.",
    deaths_declared: "Deaths declared on this node's own suspicion timeout (no authority layer).",
    deaths_committed: "Deaths committed by a verified witness certificate (authority layer).",
    votes_cast: "Dead votes this node signed as a witness after its own pings went unanswered.",
    votes_withheld: "Suspicions this node, as a witness, refused to vote on: the suspect answered.",
    votes_received: "Distinct witness votes recorded.",
    votes_refused: "Dead votes refused: signer is not one of the subject's witnesses.",
    certificates_formed: "Certificates this node assembled from a quorum of votes.",
    certificates_refused: "Certificates refused: wrong verdict, unknown, duplicate, excluded or too few witnesses.",
    statements_refused: "Membership statements refused: unsigned, or by an excluded member (authority layer).",
    accusations_refused: "Accusations refused: at an incarnation the accused never signed.",
    equivocators_excluded: "Members excluded by a verified equivocation proof.",
    proofs_refused: "Equivocation proofs refused: no conflict between two signed statements.",
    rumors_excluded: "Rumors dropped because their origin is an excluded equivocator.",
    rumors_over_cap: "Rumors dropped before verification: their origin reached its cap for the gossip interval.",
    broadcasts_too_large: "Received rumors and certificates too large to forward in one of this node's datagrams (a member with a larger --mtu).",
    implausible: "Statements, certificates and rumors refused: an incarnation or sequence number of a boot epoch no member can have reached yet.",
}

impl Metrics {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(c: &AtomicU64, v: u64) {
        c.store(v, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.all()
            .into_iter()
            .map(|(n, _, v)| (n.to_string(), v))
            .collect()
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in self.all() {
            let kind = if help.contains("(gauge") {
                "gauge"
            } else {
                "counter"
            };
            s.push_str(&format!(
                "# HELP rumor_{name} {help}\n# TYPE rumor_{name} {kind}\nrumor_{name} {v}\n"
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_well_formed() {
        let m = Metrics::default();
        Metrics::add(&m.datagrams_in, 3);
        let t = m.prometheus();
        assert!(t.contains("# TYPE rumor_datagrams_in counter\nrumor_datagrams_in 3\n"));
        assert!(t.contains("# TYPE rumor_members_alive gauge\n"));
        assert!(t
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("rumor_")));
    }
}
