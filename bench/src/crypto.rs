//! `rumor-bench crypto`: the cost of each suite, whole datagrams through the codec beside the
//! bare primitives on the same bytes, so the framing overhead is a ratio measured in one run.
//!
//! Each datagram carries one rumor of the payload size. Sealing includes building and packing
//! the message. Opening is parse + authenticate (+ decrypt); suites that sign origins also
//! decode the rumor and check its origin signature, so both sides include every signature a
//! fresh rumor costs. Raw primitives run on the same bytes in the same kind of buffers. Codec and raw samples alternate (ABBA, each codec sample beside its raw twin), each rate is the median of its samples, and the median of the per-pair open ratios is reported beside them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use codec::ed25519::{self, SecretKey};
use codec::suite::{AeadAlg, HopAuth};
use codec::*;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use serde_json::json;

use crate::util;

#[derive(clap::Args)]
pub struct Args {
    /// Write results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Rumor payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,1200")]
    pub sizes: Vec<usize>,
    /// Samples per measurement; the median is reported.
    #[arg(long, default_value_t = 25)]
    pub samples: usize,
    /// Length of one sample, in milliseconds.
    #[arg(long, default_value_t = 40)]
    pub sample_ms: u64,
    /// Only these suites (default: all).
    #[arg(long, value_delimiter = ',')]
    pub suites: Vec<Suite>,
}

impl Args {
    /// The default report's run; `quick`: three short samples per cell (a smoke run).
    pub fn for_report(json: PathBuf, quick: bool) -> Args {
        Args {
            json: Some(json),
            sizes: vec![64, 1200],
            samples: if quick { 3 } else { 11 },
            sample_ms: if quick { 5 } else { 30 },
            suites: vec![],
        }
    }
}

const TAG: u32 = 0xbe0c_0001;
const NOW_MS: u64 = 1_790_000_000_000;
/// Datagrams opened per timed chunk; copies are made outside the timed region.
const CHUNK: usize = 256;

/// Operations per second of `op`, run in chunks for about `dur`; `prep` runs untimed before
/// each chunk (to make fresh buffers for in-place decryption).
fn rate<S>(dur: Duration, mut prep: impl FnMut() -> S, mut op: impl FnMut(S) -> usize) -> f64 {
    let mut ops = 0usize;
    let mut spent = Duration::ZERO;
    while spent < dur {
        let s = prep();
        let t = Instant::now();
        ops += op(s);
        spent += t.elapsed();
    }
    ops as f64 / spent.as_secs_f64()
}

/// `CHUNK` copies of `d` in one allocation, split into independent buffers.
fn carve(d: &[u8]) -> Vec<BytesMut> {
    let mut region = BytesMut::with_capacity(d.len() * CHUNK);
    (0..CHUNK)
        .map(|_| {
            region.extend_from_slice(d);
            region.split_to(d.len())
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Fixture {
    suite: Suite,
    ring: SharedKeyRing,
    member: Arc<SecretKey>,
    keys: Vec<PublicKey>,
    payload: bytes::Bytes,
}

impl Fixture {
    fn new(suite: Suite, size: usize) -> Fixture {
        let mut rng = rand::thread_rng();
        let member = Arc::new(SecretKey::generate(&mut rng));
        Fixture {
            suite,
            ring: SharedKeyRing::new(1, ClusterKey::generate(&mut rng)),
            keys: vec![member.public(); 2],
            member,
            payload: vec![0xa5; size].into(),
        }
    }

    /// The codec path: build the rumor (signed by its origin where the suite says so), pack, seal.
    fn seal(&self, sealer: &mut Sealer) -> bytes::Bytes {
        let mut r = Rumor {
            origin: 1,
            seq: 7,
            timestamp_ms: NOW_MS,
            payload: self.payload.clone(),
            signature: None,
        };
        if self.suite.signs_origin() {
            r.signature = Some(self.member.sign(&r.signing_input(TAG)));
        }
        let mut p = Packet::new(self.suite, DEFAULT_MTU).expect("default MTU fits every suite");
        let fitted = p
            .push(&Message::Rumor(r))
            .expect("payload within rumor limit");
        assert!(
            fitted,
            "a {}-byte rumor must fit one datagram",
            self.payload.len()
        );
        sealer.seal(NOW_MS, p).expect("fresh sealer")
    }

    /// The codec path: parse and authenticate (decrypting AEAD bodies); for origin-signing
    /// suites also decode the rumor and check its origin signature, which that suite's
    /// authentication includes. Decoding is not framing, so other suites stop at `Verified`.
    fn open(&self, opener: &mut Opener, d: BytesMut) -> bool {
        let Ok(u) = Unverified::parse(d, self.suite, TAG) else {
            return false;
        };
        let Ok(v) = opener.open(u, &self.keys) else {
            return false;
        };
        if !self.suite.signs_origin() {
            return !std::hint::black_box(v).body().is_empty();
        }
        v.into_messages().all(|m| match m {
            Ok(Message::Rumor(r)) if self.suite.signs_origin() => {
                match (&r.signature, self.keys.public_key(r.origin)) {
                    (Some(sig), Some(k)) => ed25519::verify(k, &r.signing_input(TAG), sig).is_ok(),
                    _ => false,
                }
            }
            Ok(_) => true,
            Err(_) => false,
        })
    }
}

/// The bare primitives a suite's seal/open call, on the same bytes, keys prepared once.
struct Raw {
    hop: HopAuth,
    hmac: hmac::Key,
    aead: Option<LessSafeKey>,
    member: Arc<SecretKey>,
    public: PublicKey,
    signs_origin: bool,
    /// header | body | trailer of the codec's datagram, its trailer re-made under the raw key
    datagram: Vec<u8>,
    hlen: usize,
    origin_msg: Vec<u8>,
    origin_sig: Signature,
}

impl Raw {
    /// The codec's datagram with its hop trailer recomputed under a raw key (the codec's AEAD
    /// subkey stays opaque); the plaintext body, header and lengths are the same.
    fn new(f: &Fixture, sealed: &[u8]) -> anyhow::Result<Raw> {
        let key = [0x42; 32];
        let aead = match f.suite.hop() {
            HopAuth::Aead(alg) => {
                let algo = match alg {
                    AeadAlg::Aes256Gcm => &ring::aead::AES_256_GCM,
                    AeadAlg::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
                };
                Some(LessSafeKey::new(
                    UnboundKey::new(algo, &key).map_err(|_| anyhow::anyhow!("AEAD key"))?,
                ))
            }
            _ => None,
        };
        let r = Rumor {
            origin: 1,
            seq: 7,
            timestamp_ms: NOW_MS,
            payload: f.payload.clone(),
            signature: None,
        };
        let origin_msg = r.signing_input(TAG);
        let mut raw = Raw {
            hop: f.suite.hop(),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, &key),
            aead,
            member: f.member.clone(),
            public: f.member.public(),
            signs_origin: f.suite.signs_origin(),
            datagram: sealed.to_vec(),
            hlen: Header::len_for(f.suite),
            origin_sig: f.member.sign(&origin_msg),
            origin_msg,
        };
        let body_end = sealed.len() - trailer(raw.hop);
        let mut d = sealed[..body_end].to_vec();
        match raw.hop {
            HopAuth::Mac => d.extend_from_slice(hmac::sign(&raw.hmac, &d).as_ref()),
            HopAuth::Aead(_) => {
                let (h, b) = d.split_at_mut(raw.hlen);
                let key = raw.aead.as_ref().expect("AEAD suite has a key");
                let tag = key
                    .seal_in_place_separate_tag(Self::nonce(), Aad::from(&*h), b)
                    .map_err(|_| anyhow::anyhow!("seal"))?;
                d.extend_from_slice(tag.as_ref());
            }
            HopAuth::None | HopAuth::Signature => d = sealed.to_vec(),
        }
        raw.datagram = d;
        Ok(raw)
    }

    fn nonce() -> Nonce {
        Nonce::assume_unique_for_key([0; 12])
    }

    /// Raw seal: origin signature (if any) and the hop primitive over header | body.
    fn seal(&self, buf: &mut Vec<u8>) -> usize {
        if self.signs_origin {
            std::hint::black_box(self.member.sign(&self.origin_msg));
        }
        let body_end = self.datagram.len() - trailer(self.hop);
        match self.hop {
            HopAuth::None => {}
            HopAuth::Mac => {
                std::hint::black_box(hmac::sign(&self.hmac, &self.datagram[..body_end]));
            }
            HopAuth::Aead(_) => {
                buf.clear();
                buf.extend_from_slice(&self.datagram[..body_end]);
                let (h, b) = buf.split_at_mut(self.hlen);
                let key = self.aead.as_ref().expect("AEAD suite has a key");
                let _ = std::hint::black_box(key.seal_in_place_separate_tag(
                    Self::nonce(),
                    Aad::from(&*h),
                    b,
                ));
            }
            HopAuth::Signature => {
                std::hint::black_box(self.member.sign(&self.datagram[..body_end]));
            }
        }
        1
    }

    /// Raw open of one fresh copy: the hop primitive, then the origin signature (if any).
    fn open(&self, d: &mut [u8]) -> bool {
        let body_end = d.len() - trailer(self.hop);
        let hop_ok = match self.hop {
            HopAuth::None => true,
            HopAuth::Mac => hmac::verify(&self.hmac, &d[..body_end], &d[body_end..]).is_ok(),
            HopAuth::Aead(_) => {
                let (h, b) = d.split_at_mut(self.hlen);
                let key = self.aead.as_ref().expect("AEAD suite has a key");
                key.open_in_place(Self::nonce(), Aad::from(&*h), b).is_ok()
            }
            HopAuth::Signature => {
                let sig = Signature::from_bytes(d[body_end..].try_into().expect("64-byte trailer"));
                ed25519::verify(&self.public, &d[..body_end], &sig).is_ok()
            }
        };
        let origin_ok = !self.signs_origin
            || ed25519::verify(&self.public, &self.origin_msg, &self.origin_sig).is_ok();
        hop_ok && origin_ok
    }
}

fn trailer(hop: HopAuth) -> usize {
    match hop {
        HopAuth::None => 0,
        HopAuth::Mac => header::MAC_LEN,
        HopAuth::Aead(_) => header::AEAD_TAG_LEN,
        HopAuth::Signature => ed25519::SIGNATURE_LEN,
    }
}

struct Row {
    suite: Suite,
    size: usize,
    datagram_bytes: usize,
    seal: f64,
    open: f64,
    raw_seal: Option<f64>,
    raw_open: Option<f64>,
    /// Median over sample pairs of codec open rate / raw open rate.
    open_ratio_paired: Option<f64>,
}

#[derive(Clone, Copy)]
enum Op {
    Open,
    Seal,
}

fn measure(suite: Suite, size: usize, samples: usize, dur: Duration) -> anyhow::Result<Row> {
    let f = Fixture::new(suite, size);
    let mut rng = rand::thread_rng();
    let mut sealer = Sealer::new(
        suite,
        TAG,
        1,
        1,
        HopKeys::for_suite(suite, Some(&f.ring), &f.member)?,
        &mut rng,
    )
    .context("sealer")?;
    let mut opener = Opener::new(suite, Some(f.ring.clone())).context("opener")?;
    let sealed = f.seal(&mut sealer);
    anyhow::ensure!(
        f.open(&mut opener, BytesMut::from(&sealed[..])),
        "{suite}: the codec did not open its own datagram"
    );
    let raw = Raw::new(&f, &sealed)?;
    anyhow::ensure!(
        raw.open(&mut raw.datagram.clone()),
        "{suite}: raw check failed"
    );
    // Receive buffers are carved from one region, as a receive ring's are: no allocation per datagram.
    let copies = || carve(&sealed);
    let (mut s, mut o, mut rs, mut ro) = (vec![], vec![], vec![], vec![]);
    let mut scratch = Vec::with_capacity(DEFAULT_MTU);
    for i in 0..samples {
        // ABBA order, with each codec sample right beside its raw twin (open beside raw open,
        // seal beside raw seal): a background burst that slows one side of a pair slows the
        // other next, and no other measurement sits between the two.
        let codec_first = i % 2 == 0;
        for op in [Op::Open, Op::Seal] {
            for codec_side in [codec_first, !codec_first] {
                match (op, codec_side) {
                    // Open first: sealing advances the counter but the sealed copy above stays valid.
                    (Op::Open, true) => o.push(rate(dur, copies, |c| {
                        c.into_iter()
                            .map(|d| usize::from(f.open(&mut opener, d)))
                            .sum()
                    })),
                    (Op::Seal, true) => s.push(rate(
                        dur,
                        || (),
                        |_| {
                            (0..CHUNK)
                                .map(|_| std::hint::black_box(f.seal(&mut sealer)).len().min(1))
                                .sum()
                        },
                    )),
                    (_, false) if suite == Suite::None => {}
                    // The same carved buffers as the codec side, each opened in place and dropped.
                    (Op::Open, false) => ro.push(rate(
                        dur,
                        || carve(&raw.datagram),
                        |c| {
                            c.into_iter()
                                .map(|mut d| usize::from(raw.open(&mut d)))
                                .sum()
                        },
                    )),
                    (Op::Seal, false) => rs.push(rate(
                        dur,
                        || (),
                        |_| (0..CHUNK).map(|_| raw.seal(&mut scratch)).sum(),
                    )),
                }
            }
        }
    }
    // Each pair's ratio, codec over raw, measured side by side: the least noisy view of the
    // framing overhead on a shared machine, reported beside the ratio of the two medians.
    let open_pairs =
        (!ro.is_empty()).then(|| median(o.iter().zip(&ro).map(|(c, r)| c / r).collect()));
    let med = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
    Ok(Row {
        suite,
        size,
        datagram_bytes: sealed.len(),
        seal: median(s),
        open: median(o),
        raw_seal: med(rs),
        raw_open: med(ro),
        open_ratio_paired: open_pairs,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.samples > 0, "--samples must be at least 1");
    for &size in &a.sizes {
        anyhow::ensure!(
            size <= message::MAX_RUMOR_PAYLOAD,
            "--sizes: {size} exceeds the rumor payload limit {}",
            message::MAX_RUMOR_PAYLOAD
        );
    }
    let suites = if a.suites.is_empty() {
        Suite::ALL.to_vec()
    } else {
        a.suites.clone()
    };
    let dur = Duration::from_millis(a.sample_ms);
    let mut rows = Vec::new();
    println!(
        "{:<18} {:>5} {:>6} {:>12} {:>12} {:>12} {:>12} {:>8} {:>7}",
        "suite",
        "size",
        "bytes",
        "seal/s",
        "open/s",
        "raw seal/s",
        "raw open/s",
        "open/raw",
        "paired"
    );
    for &suite in &suites {
        for &size in &a.sizes {
            let r = measure(suite, size, a.samples, dur)?;
            let ratio = r
                .raw_open
                .map_or("-".to_string(), |x| format!("{:.2}", r.open / x));
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.0}"));
            let paired = r
                .open_ratio_paired
                .map_or("-".to_string(), |x| format!("{x:.2}"));
            println!(
                "{:<18} {:>5} {:>6} {:>12.0} {:>12.0} {:>12} {:>12} {:>8} {:>7}",
                suite.name(),
                size,
                r.datagram_bytes,
                r.seal,
                r.open,
                f(r.raw_seal),
                f(r.raw_open),
                ratio,
                paired
            );
            rows.push(r);
        }
    }
    if let Some(path) = &a.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "suite": r.suite.name(), "size": r.size, "datagram_bytes": r.datagram_bytes,
                    "seal_per_s": r.seal, "open_per_s": r.open,
                    "raw_seal_per_s": r.raw_seal, "raw_open_per_s": r.raw_open,
                    "open_ratio": r.raw_open.map(|x| r.open / x), "open_ratio_paired": r.open_ratio_paired, "seal_ratio": r.raw_seal.map(|x| r.seal / x),
                })
            })
            .collect();
        util::write_json(
            path,
            &json!({ "samples": a.samples, "sample_ms": a.sample_ms, "peak_rss_bytes": util::peak_rss_bytes(), "results": results }),
        )?;
    }
    Ok(())
}
