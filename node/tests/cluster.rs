//! Real loopback clusters of in-process nodes (the same `Node` the `rumor` binary runs): for
//! every suite, convergence, dissemination, crash detection within the configured bound, and
//! restart with rejoin; and hostile datagrams against a running node, which must keep running
//! and count each by its reason. Every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use codec::keyfile::{ClusterKeyFile, SigningKeyFile, SigningRole};
use codec::{
    ClusterKey, HopKeys, Message, Packet, Roster, RosterMember, Rumor, Sealer, SecretKey,
    SharedKeyRing, Suite,
};
use rumor::config::{IoMode, RunOptions};
use rumor::control::{request, Request, Response};
use rumor::identity::Identity;
use rumor::io::socket::bind_group;
use rumor::runtime::{unix_ms, Node};

const PROBE: Duration = Duration::from_millis(200);
const GOSSIP: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(15);

struct Cluster {
    /// Keys, roster and state directories; removed on drop, after the nodes are killed.
    dir: tempfile::TempDir,
    suite: Suite,
    addrs: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Cluster {
    /// Keys, roster and sockets for `n` members; nothing started.
    fn new(n: usize, suite: Suite) -> (Cluster, Vec<rumor::runtime::BoundGroup>) {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("rumor-it-{}-", suite.name().replace('+', "-")))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut rng = rand::thread_rng();
        let auth = SecretKey::generate(&mut rng);
        let groups: Vec<_> = (0..n)
            .map(|_| bind_group("127.0.0.1:0".parse().unwrap(), 1).unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = groups.iter().map(|g| g.1).collect();
        let mut members = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            let sk = SecretKey::generate(&mut rng);
            SigningKeyFile::write(&dir.join(format!("m{i}.key")), SigningRole::Member, &sk)
                .unwrap();
            members.push(RosterMember {
                id: i as u32,
                key: sk.public(),
                addr: Some(*a),
            });
        }
        Roster::new("it", 1, auth.public(), members)
            .unwrap()
            .write(&dir.join("roster.toml"), &auth)
            .unwrap();
        ClusterKeyFile::write(&dir.join("cluster.key"), 1, &ClusterKey::generate(&mut rng))
            .unwrap();
        let nodes = (0..n).map(|_| None).collect();
        (
            Cluster {
                dir: tmp,
                suite,
                addrs,
                nodes,
            },
            groups,
        )
    }

    fn control(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("s{i}")).join("control.sock")
    }

    fn start(&mut self, i: usize, group: Option<rumor::runtime::BoundGroup>) {
        let opts = RunOptions {
            bind: Some(self.addrs[i]),
            seeds: Some(vec![self.addrs[0]]),
            suite: Some(self.suite),
            key: Some(self.dir.path().join(format!("m{i}.key"))),
            roster: Some(self.dir.path().join("roster.toml")),
            cluster_key: self
                .suite
                .hop()
                .ne(&codec::suite::HopAuth::Signature)
                .then(|| self.dir.path().join("cluster.key"))
                .filter(|_| self.suite != Suite::None),
            state_dir: Some(self.dir.path().join(format!("s{i}"))),
            control: Some(self.control(i)),
            io: Some(IoMode::Auto),
            io_threads: Some(1),
            verify_threads: Some(1),
            pin: Some(false),
            gossip_interval: Some(GOSSIP),
            probe_interval: Some(PROBE),
            ..RunOptions::default()
        };
        let cfg = opts.resolve(RunOptions::default()).unwrap();
        let id = Identity::load(&cfg, unix_secs()).unwrap();
        self.nodes[i] = Some(Node::start(cfg, id, group).unwrap());
    }

    fn members(&self, i: usize) -> Vec<(u32, String, u64)> {
        match request(&self.control(i), &Request::Members, Duration::from_secs(2)) {
            Ok(Response::Members { members, .. }) => members
                .into_iter()
                .map(|m| (m.id, m.state, m.incarnation))
                .collect(),
            other => panic!("node {i}: {other:?}"),
        }
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_some())
    }

    /// Waits until `pred` holds for every live node's view; returns how long it took.
    fn until(&self, what: &str, pred: impl Fn(usize, &[(u32, String, u64)]) -> bool) -> Duration {
        let t = Instant::now();
        loop {
            if self.live().all(|i| pred(i, &self.members(i))) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < WAIT,
                "{}: {what} not reached in {WAIT:?}",
                self.suite
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn delivered(&self, i: usize, origin: u32, seq: u64) -> bool {
        match request(
            &self.control(i),
            &Request::Stats { since_ms: 0 },
            Duration::from_secs(2),
        ) {
            Ok(Response::Stats { deliveries, .. }) => deliveries
                .iter()
                .any(|d| d.origin == origin && d.seq == seq),
            other => panic!("node {i}: {other:?}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            let _ = n.kill();
        }
    }
}

fn state_of(view: &[(u32, String, u64)], id: u32) -> Option<(&str, u64)> {
    view.iter().find(|m| m.0 == id).map(|m| (m.1.as_str(), m.2))
}

fn lifecycle(suite: Suite) {
    const N: usize = 5;
    let (mut c, groups) = Cluster::new(N, suite);
    for (i, g) in groups.into_iter().enumerate() {
        c.start(i, Some(g));
    }
    c.until("convergence", |_, v| {
        v.len() == N && v.iter().all(|m| m.1 == "alive")
    });

    let Response::Published { origin, seq, .. } = request(
        &c.control(3),
        &Request::Publish {
            payload_hex: hex::encode(b"hello"),
        },
        Duration::from_secs(2),
    )
    .unwrap() else {
        panic!("publish")
    };
    let t = Instant::now();
    while !(0..N).all(|i| c.delivered(i, origin, seq)) {
        assert!(
            t.elapsed() < WAIT,
            "{suite}: rumor not delivered everywhere"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // crash: no leave message; everyone must mark it dead within the configured bound
    let victim = N - 1;
    let before = state_of(&c.members(0), victim as u32).unwrap().1;
    c.nodes[victim].take().unwrap().kill().unwrap();
    let core_cfg = rumor::core::Config {
        probe_interval: PROBE,
        probe_timeout: PROBE / 2,
        gossip_interval: GOSSIP,
        ..rumor::core::Config::default()
    };
    let bound = core_cfg.detect_bound(N);
    let took = c.until("crash detection", |_, v| {
        matches!(state_of(v, victim as u32), Some(("dead", _)))
    });
    assert!(
        took <= bound,
        "{suite}: detection took {took:?}, bound {bound:?}"
    );

    // restart: a new boot epoch means a higher incarnation, which overrides its death
    std::thread::sleep(Duration::from_millis(1100));
    c.start(victim, None);
    c.until(
        "rejoin",
        |_, v| matches!(state_of(v, victim as u32), Some(("alive", inc)) if inc > before),
    );

    for n in c.nodes.iter().flatten() {
        assert_eq!(
            n.metrics.drop_auth.load(Ordering::Relaxed),
            0,
            "{suite}: honest traffic failed authentication"
        );
    }
    if suite.signs_origin() {
        // one origin verification per unique rumor per receiving node, not per copy
        for n in c.nodes.iter().flatten().take(N - 1) {
            assert!(
                n.metrics.origin_verifications.load(Ordering::Relaxed) <= 2,
                "{suite}: rumor origin verified more than once"
            );
        }
    }
}

#[test]
fn cluster_none() {
    lifecycle(Suite::None);
}
#[test]
fn cluster_hmac_sha256() {
    lifecycle(Suite::HmacSha256);
}
#[test]
fn cluster_aes_256_gcm() {
    lifecycle(Suite::Aes256Gcm);
}
#[test]
fn cluster_ed25519() {
    lifecycle(Suite::Ed25519);
}
#[test]
fn cluster_aead_ed25519() {
    lifecycle(Suite::AeadEd25519);
}

/// Valid datagram from roster member `from` (key file in `dir`), as the node expects.
fn valid_datagram(dir: &Path, suite: Suite, from: u32, tag: u32) -> bytes::Bytes {
    let sk = std::sync::Arc::new(
        SigningKeyFile::load(&dir.join(format!("m{from}.key")), SigningRole::Member)
            .unwrap()
            .secret,
    );
    let ck = ClusterKeyFile::load(&dir.join("cluster.key")).unwrap();
    let hop = HopKeys::for_suite(suite, Some(&SharedKeyRing::new(ck.key_id, ck.key)), &sk).unwrap();
    let mut s = Sealer::new(suite, tag, from, unix_secs(), hop, &mut rand::thread_rng()).unwrap();
    let mut r = Rumor {
        origin: from,
        seq: 1,
        timestamp_ms: unix_ms(),
        payload: bytes::Bytes::from_static(b"x"),
        signature: None,
    };
    r.signature = suite.signs_origin().then(|| sk.sign(&r.signing_input(tag)));
    let mut p = Packet::new(suite, 1400).unwrap();
    p.push(&Message::Rumor(r)).unwrap();
    s.seal(unix_ms(), p).unwrap()
}

#[test]
fn hostile_datagrams_are_dropped_and_counted() {
    let suite = Suite::Ed25519;
    let (mut c, mut groups) = Cluster::new(3, suite);
    c.start(0, Some(groups.remove(0)));
    let node = c.nodes[0].as_ref().unwrap();
    let tag = codec::cluster_tag("it");
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = c.addrs[0];
    let good = valid_datagram(c.dir.path(), suite, 1, tag);
    // random bytes, a truncated datagram, flipped bits in header, body and signature
    for len in [0usize, 1, 7, 39, 300, 1400] {
        tx.send_to(
            &(0..len).map(|_| rand::random::<u8>()).collect::<Vec<_>>(),
            to,
        )
        .unwrap();
    }
    tx.send_to(&good[..30], to).unwrap();
    for pos in [20, good.len() / 2, good.len() - 1] {
        let mut bad = good.to_vec();
        bad[pos] ^= 0x10;
        tx.send_to(&bad, to).unwrap();
    }
    // the genuine datagram, then its replay
    tx.send_to(&good, to).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    tx.send_to(&good, to).unwrap();
    // a key that is not on the roster, claiming an id that is not either
    let stranger = std::sync::Arc::new(SecretKey::generate(&mut rand::thread_rng()));
    let mut s = Sealer::new(
        suite,
        tag,
        77,
        1,
        HopKeys::Signer(stranger),
        &mut rand::thread_rng(),
    )
    .unwrap();
    let mut p = Packet::new(suite, 1400).unwrap();
    p.push(&Message::Ping { seq: 1 }).unwrap();
    tx.send_to(&s.seal(unix_ms(), p).unwrap(), to).unwrap();

    let m = &node.metrics;
    let t = Instant::now();
    let counts = || {
        [
            &m.drop_malformed,
            &m.drop_auth,
            &m.drop_replay,
            &m.drop_unknown_sender,
            &m.accepted,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    };
    // 6 random + 1 truncated are malformed (random bytes never carry our magic, version and
    // cluster tag); the header flip breaks the cluster tag or the signature; 2 body/sig flips fail.
    while !matches!(counts(), [mal, auth, 1, 1, 1] if mal + auth == 10) {
        assert!(
            t.elapsed() < WAIT,
            "counters never matched: [malformed, auth, replay, unknown, accepted] = {:?}",
            counts()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // still serving
    assert!(!c.members(0).is_empty());
}
