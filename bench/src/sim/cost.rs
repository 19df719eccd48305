//! The simulator's CPU model: what one datagram costs a member to receive and to send, per
//! suite, in microseconds of one core.
//!
//! Where the numbers come from: by default, `rumor-bench crypto` and `rumor-bench pool` as run by
//! the default report on this machine kind (2-core AMD EPYC VM, report 20261125T061103Z:
//! `crypto.json` open/seal rates of whole datagrams at 64 and 1200 byte payloads, `pool.json`
//! batch-verification gain of one worker), and DESIGN.md's limits table for the per-datagram
//! socket cost (loopback recvmmsg ≈ 1 M/s, sendmmsg ≈ 0.47 M/s per core). `--costs-from DIR`
//! reads the same two files of another run instead; `--cost-us RECV,SEND` replaces the whole
//! model by two fixed costs.
//! Concurrency: plain data.

use std::path::Path;

use anyhow::{bail, Context};
use codec::Suite;
use serde_json::Value;

/// Datagram sizes of the two measured payloads (64 and 1200 bytes) under suite `none`; the
/// other suites add their header and trailer, which `crypto.json` names per row.
const SMALL_PAYLOAD: f64 = 64.0;
const LARGE_PAYLOAD: f64 = 1200.0;

/// Whole-datagram rates of `rumor-bench crypto` in report 20261125T061103Z on this machine:
/// (suite, payload, datagram bytes, seal/s, open/s).
const MEASURED: [(Suite, f64, f64, f64, f64); 10] = [
    (Suite::None, SMALL_PAYLOAD, 130.0, 7_045_943.0, 20_344_833.0),
    (
        Suite::None,
        LARGE_PAYLOAD,
        1266.0,
        6_254_654.0,
        20_256_003.0,
    ),
    (
        Suite::HmacSha256,
        SMALL_PAYLOAD,
        162.0,
        2_088_148.0,
        3_152_962.0,
    ),
    (
        Suite::HmacSha256,
        LARGE_PAYLOAD,
        1298.0,
        821_224.0,
        990_880.0,
    ),
    (
        Suite::Aes256Gcm,
        SMALL_PAYLOAD,
        162.0,
        3_593_176.0,
        4_627_426.0,
    ),
    (
        Suite::Aes256Gcm,
        LARGE_PAYLOAD,
        1298.0,
        1_897_077.0,
        2_670_740.0,
    ),
    (
        Suite::ChaCha20Poly1305,
        SMALL_PAYLOAD,
        162.0,
        3_013_983.0,
        3_499_422.0,
    ),
    (
        Suite::ChaCha20Poly1305,
        LARGE_PAYLOAD,
        1298.0,
        1_088_947.0,
        1_157_762.0,
    ),
    (Suite::Ed25519, SMALL_PAYLOAD, 258.0, 24_687.0, 13_223.0),
    (Suite::Ed25519, LARGE_PAYLOAD, 1394.0, 20_085.0, 12_464.0),
];
/// `pool.json` of the same report: one worker verifying batches of 64 against single verifies.
const MEASURED_BATCH_GAIN: f64 = 1.65;
/// DESIGN.md limits: loopback receive ≈ 1 M datagrams/s (recvmmsg), send ≈ 0.47 M/s (sendmmsg),
/// one core each: the cost every datagram pays before and after any crypto.
const SOCKET_RECV_US: f64 = 1.0;
const SOCKET_SEND_US: f64 = 2.1;

/// Microseconds as a linear function of datagram bytes, through two measured points.
#[derive(Clone, Copy, Debug)]
struct Line {
    at: (f64, f64),
    us: (f64, f64),
}

impl Line {
    fn eval(&self, bytes: usize) -> f64 {
        let (x0, x1) = self.at;
        let (y0, y1) = self.us;
        let slope = if x1 > x0 { (y1 - y0) / (x1 - x0) } else { 0.0 };
        (y0 + slope * (bytes as f64 - x0)).max(0.0)
    }
}

/// How one simulated member pays for its datagrams.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// Receive: socket cost plus opening the datagram (a hop signature check for `ed25519`).
    recv: Line,
    /// Send: sealing (signing for `ed25519`) plus the socket cost.
    send: Line,
    /// One origin-signature check of a rumor (suites that sign origins), µs.
    origin_verify_us: f64,
    /// The hop check is a signature and can join a verification batch.
    hop_is_signature: bool,
    /// Verify each rumor's origin only the first time this member sees it (the node checks only
    /// what is news to its core).
    pub dedup: bool,
    /// Signatures verified with others in a batch cost 1/`batch_gain` each.
    pub batch: bool,
    batch_gain: f64,
    /// Per received datagram, the process's own cost beyond socket and crypto: thread hand-offs,
    /// wake-ups, timers. 0 unless measured on a real cluster (the real shift calibrates it).
    pub overhead_us: f64,
    /// The model's source, for the report.
    pub source: String,
}

/// What one received datagram asks of the verifier.
pub struct Incoming {
    pub bytes: usize,
    /// Rumors in the datagram, and those the member has not seen yet.
    pub rumors: usize,
    pub new_rumors: usize,
    /// Datagrams already waiting for this member's CPU (a batch can form only with company).
    pub backlog: u32,
}

impl CostModel {
    /// The model of `suite` from this machine's measurements (see the module doc).
    pub fn measured(suite: Suite) -> anyhow::Result<CostModel> {
        let rows: Vec<(f64, f64, f64, f64)> = MEASURED
            .iter()
            .filter(|r| r.0 == suite)
            .map(|r| (r.1, r.2, r.3, r.4))
            .collect();
        CostModel::from_rows(
            suite,
            &rows,
            MEASURED_BATCH_GAIN,
            "crypto/pool of report 20261125T061103Z".into(),
        )
    }

    /// The model of `suite` from another run's `crypto.json` and `pool.json` in `dir`.
    pub fn from_report(suite: Suite, dir: &Path) -> anyhow::Result<CostModel> {
        let read = |f: &str| -> anyhow::Result<Value> {
            let p = dir.join(f);
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        };
        let crypto = read("crypto.json")?;
        let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
        let rows: Vec<(f64, f64, f64, f64)> = crypto
            .get("results")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.get("suite").and_then(Value::as_str) == Some(suite.name()))
            .filter_map(|r| {
                Some((
                    num(r, "size")?,
                    num(r, "datagram_bytes")?,
                    num(r, "seal_per_s")?,
                    num(r, "open_per_s")?,
                ))
            })
            .collect();
        // The batch gain matters only to signing suites; a missing pool run keeps the default.
        let gain = read("pool.json")
            .ok()
            .and_then(|p| num(&p, "ratio_to_raw"))
            .filter(|g| g.is_finite() && *g >= 1.0)
            .unwrap_or(MEASURED_BATCH_GAIN);
        CostModel::from_rows(suite, &rows, gain, format!("{}", dir.display()))
    }

    /// Fixed costs per datagram, whatever its size and suite.
    pub fn fixed(recv_us: f64, send_us: f64) -> CostModel {
        let flat = |us| Line {
            at: (0.0, 1.0),
            us: (us, us),
        };
        CostModel {
            recv: flat(recv_us),
            send: flat(send_us),
            origin_verify_us: 0.0,
            hop_is_signature: false,
            dedup: true,
            batch: false,
            batch_gain: 1.0,
            overhead_us: 0.0,
            source: format!("--cost-us {recv_us},{send_us}"),
        }
    }

    fn from_rows(
        suite: Suite,
        rows: &[(f64, f64, f64, f64)],
        batch_gain: f64,
        source: String,
    ) -> anyhow::Result<CostModel> {
        let pick = |payload: f64| rows.iter().find(|r| r.0 == payload).copied();
        let (Some(small), Some(large)) = (pick(SMALL_PAYLOAD), pick(LARGE_PAYLOAD)) else {
            bail!(
                "no {SMALL_PAYLOAD}- and {LARGE_PAYLOAD}-byte rows for suite {suite} in {source}"
            );
        };
        if [small.2, small.3, large.2, large.3]
            .iter()
            .any(|r| !r.is_finite() || *r <= 0.0)
        {
            bail!("non-positive rate for suite {suite} in {source}");
        }
        let at = (small.1, large.1);
        let signature = suite.hop() == codec::suite::HopAuth::Signature;
        Ok(CostModel {
            recv: Line {
                at,
                us: (
                    SOCKET_RECV_US + 1e6 / small.3,
                    SOCKET_RECV_US + 1e6 / large.3,
                ),
            },
            send: Line {
                at,
                us: (
                    SOCKET_SEND_US + 1e6 / small.2,
                    SOCKET_SEND_US + 1e6 / large.2,
                ),
            },
            // An origin check is one Ed25519 verification of a short input: the small datagram's.
            origin_verify_us: if suite.signs_origin() {
                1e6 / small.3
            } else {
                0.0
            },
            hop_is_signature: signature,
            dedup: true,
            batch: true,
            batch_gain,
            overhead_us: 0.0,
            source,
        })
    }

    /// Whether `recv_us` depends on the rumors a datagram carries. Without origin signatures or a
    /// signed hop it never does, and the world spares itself looking every rumor up in the
    /// receiver's log (a cache miss each at n = 10,000).
    pub fn counts_rumors(&self) -> bool {
        self.origin_verify_us != 0.0 || self.hop_is_signature
    }

    /// µs of one core to receive and verify `d`.
    pub fn recv_us(&self, d: &Incoming) -> f64 {
        let origins = if self.dedup { d.new_rumors } else { d.rumors };
        let signatures = origins + usize::from(self.hop_is_signature);
        let batched = self.batch && (d.backlog > 0 || signatures > 1);
        let per_sig = |us: f64| if batched { us / self.batch_gain } else { us };
        let hop = self.recv.eval(d.bytes);
        let hop = if self.hop_is_signature {
            // Only the verification part batches; the socket part does not.
            SOCKET_RECV_US + per_sig(hop - SOCKET_RECV_US)
        } else {
            hop
        };
        hop + origins as f64 * per_sig(self.origin_verify_us) + self.overhead_us
    }

    /// µs of one core to seal and send a datagram of `bytes`.
    pub fn send_us(&self, bytes: usize) -> f64 {
        self.send.eval(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(rumors: usize, new_rumors: usize, backlog: u32) -> Incoming {
        Incoming {
            bytes: 300,
            rumors,
            new_rumors,
            backlog,
        }
    }

    #[test]
    fn signatures_cost_more_and_dedup_and_batching_save() {
        let none = CostModel::measured(Suite::None).expect("none");
        let aead = CostModel::measured(Suite::Aes256Gcm).expect("aead");
        let mut ed = CostModel::measured(Suite::Ed25519).expect("ed");
        let one = incoming(3, 1, 0);
        assert!(none.recv_us(&one) < aead.recv_us(&one));
        assert!(aead.recv_us(&one) * 10.0 < ed.recv_us(&one));
        // A lone hop signature is batched only when others wait behind it.
        assert!(ed.recv_us(&incoming(0, 0, 5)) < ed.recv_us(&incoming(0, 0, 0)));
        let with = ed.recv_us(&one);
        ed.dedup = false;
        ed.batch = false;
        assert!(ed.recv_us(&one) > 2.0 * with);
        // Bigger datagrams cost more to seal.
        assert!(aead.send_us(1300) > aead.send_us(160));
    }
}
