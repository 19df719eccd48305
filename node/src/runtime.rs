//! The running node: io threads receive and make the cheap checks (the pool's ingress), the
//! verification pool authenticates, and one core thread owns the protocol state, applies what
//! was verified, and seals and sends what the core decides (DESIGN.md, "Data path").
//!
//! ```text
//! io thread × N ──Ingress::submit──▶ verify pool ──verdict batches──▶ core thread ──send_to──▶ peers
//!                                                   control socket ──▶ (requests, replies)
//! ```
//! Concurrency: the core thread is the single owner of `Core`, the sealer and the anti-replay
//! windows; io threads own their receivers; counters are shared atomics (`metrics.rs`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use codec::keyfile::ClusterKeyFile;
use codec::{
    ed25519, HopKeys, MemberId, MemberState, Message, Packet, ReplayConfig, ReplayGuard, SealError,
    Sealer,
};
use crossbeam::channel::{self, Receiver as ChanRx, Sender as ChanTx};
use verify_pool::{Admit, KeySource, Outcome, Output, Pool, PoolConfig, ShedReason};

use crate::config::{IoMode, RunConfig};
use crate::control::{Delivery, MemberView, Request, Response, MAX_REQUEST};
use crate::core::{Action, Boot, Config as CoreConfig, Core, Millis, Roster as AddressBook};
use crate::identity::Identity;
use crate::io::send::{MmsgTx, Transmitter, UringTx};
use crate::io::{self, mmsg::MmsgRx, socket, uring::UringRx, Receiver};
use crate::metrics::Metrics;
use crate::provenance::{CheckId, Checks, Rules};

/// Longest an idle thread sleeps in the kernel before looking at the stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Deliveries remembered for `Stats` requests (a benchmark reads them back).
const DELIVERIES_KEPT: usize = 1 << 16;
/// How often gauges and pool counters are copied into the metrics.
const GAUGE_PERIOD: Duration = Duration::from_millis(250);
/// How long the core thread keeps applying queued verdict batches before it runs timers and
/// sends: far below any protocol timer (the shortest, a probe timeout, is hundreds of ms).
const DRAIN_FOR: Duration = Duration::from_millis(1);
/// After a leave, time to let the Left statement go out before exiting.
const LEAVE_GRACE: Duration = Duration::from_millis(600);

type ControlMsg = (Request, ChanTx<Response>);

/// The roster's keys for the pool (only admitted keys are on it).
struct RosterKeys(Arc<codec::Roster>);

impl KeySource for RosterKeys {
    fn key_bytes(&self, member: MemberId) -> Option<[u8; ed25519::PUBLIC_KEY_LEN]> {
        codec::MemberKeys::public_key(&*self.0, member).map(|k| k.to_bytes())
    }

    /// The roster refused inadmissible keys when it was loaded.
    fn admitted_key(&self, member: MemberId) -> Option<codec::PublicKey> {
        codec::MemberKeys::public_key(&*self.0, member).copied()
    }
}

/// Wall-clock unix time in ms: the clock the runtime feeds the core and stamps datagrams with.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Builds the receivers for the io threads, choosing io_uring or recvmmsg.
fn receivers(
    mode: IoMode,
    socks: Vec<UdpSocket>,
    buf: usize,
) -> anyhow::Result<Vec<Box<dyn Receiver + Send>>> {
    let mut out: Vec<Box<dyn Receiver + Send>> = Vec::with_capacity(socks.len());
    let mut use_uring = mode != IoMode::Mmsg;
    for s in socks {
        if use_uring {
            match UringRx::new(s.try_clone().context("cloning socket")?, buf) {
                Ok(r) => {
                    out.push(Box::new(r));
                    continue;
                }
                Err(e) if mode == IoMode::Uring => {
                    anyhow::bail!("--io uring: io_uring cannot be set up here: {e}")
                }
                Err(e) => {
                    tracing::warn!("io_uring unavailable ({e}); using recvmmsg");
                    use_uring = false;
                }
            }
        }
        out.push(Box::new(MmsgRx::new(s, buf)));
    }
    Ok(out)
}

/// Runs a node until SIGINT/SIGTERM or a `Leave` request; then leaves the cluster and returns.
pub fn run(cfg: RunConfig, id: Identity) -> anyhow::Result<()> {
    let node = Node::start(cfg, id, None)?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&node.stop))
            .context("installing signal handlers")?;
    }
    node.wait()
}

/// Sockets bound ahead of [`Node::start`] (a benchmark fills their buffers first).
pub type BoundGroup = (Vec<UdpSocket>, SocketAddr, socket::PortLock);

/// A node running on its own threads.
pub struct Node {
    pub bound: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// When the first io thread was started: the node receives from then on, and everything
    /// before it was setup (a benchmark times the two apart).
    pub receiving_since: Instant,
    stop: Arc<AtomicBool>,
    crash: Arc<AtomicBool>,
    core: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// Binds (unless `group` is given), starts io threads, the pool and the core thread.
    pub fn start(
        cfg: RunConfig,
        mut id: Identity,
        group: Option<BoundGroup>,
    ) -> anyhow::Result<Node> {
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (socks, bound, port_lock) = match group {
            Some(g) => g,
            None => socket::bind_group(cfg.bind, cfg.io_threads)?,
        };
        let send_sock = socks
            .first()
            .context("no socket")?
            .try_clone()
            .context("cloning the send socket")?;
        let rxs = receivers(cfg.io, socks, io::buffer_size(cfg.mtu))?;
        let uses_uring = rxs.first().is_some_and(|r| r.name() == "uring");
        let tag = id.roster.cluster_tag();
        let limit = verify_pool::RateLimit {
            per_second: cfg.sender_rate,
            burst: cfg.sender_rate,
        };
        let signed_hops = id.suite.hop() == codec::suite::HopAuth::Signature;
        let pool_cfg = PoolConfig {
            suite: id.suite,
            cluster_tag: tag,
            ring: id.ring.clone(),
            workers: cfg.verify_threads,
            pin: cfg.pin,
            batch: cfg.batch_verify,
            dedup: signed_hops,
            // Without hop signatures the check is cheaper than a handoff to a worker thread.
            verify_on_ingress: !signed_hops,
            sender_limit: limit,
            // One member's budget per source address: members have addresses of their own, so
            // a source that claims many ids (an outsider forging them) gets no more signature
            // checks than one member would. A fleet behind one NAT address shares it: raise
            // --sender-rate there.
            origin_limit: limit,
            // Verdicts are handed on HANDOFF_MAX at a time: the channel holds as many
            // datagrams as the pool's default does in batches of 64. Deeper, more receive
            // memory is in flight than the receivers keep warm (rxbuf.rs).
            output_batches: if signed_hops {
                PoolConfig::default().output_batches
            } else {
                VERDICTS_IN_FLIGHT / HANDOFF_MAX
            },
            ..PoolConfig::default()
        };
        let (mut pool, verdicts) =
            Pool::start(pool_cfg, Arc::new(RosterKeys(Arc::clone(&id.roster))))
                .context("starting the verification pool")?;

        let cores = if cfg.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        // Verifying on the io threads, no worker takes the cores past theirs: the core thread
        // gets the first such core to itself rather than meeting an io thread on one.
        let core_thread_core = cores.get(rxs.len()).copied().filter(|_| !signed_hops);
        let (ctl_tx, ctl_rx) = channel::bounded::<ControlMsg>(64);
        serve_control(&cfg.control, ctl_tx)?;
        if let Some(addr) = cfg.metrics_addr {
            serve_metrics(addr, Arc::clone(&metrics))?;
        }
        tracing::info!(member = id.member, %bound, suite = %id.suite, epoch = id.epoch.current(), io = ?cfg.io, "node running");
        // Sends go out the way receives come in: io_uring if the receivers got it, else sendmmsg.
        let tx: Box<dyn Transmitter + Send> = match uses_uring {
            true => Box::new(UringTx::new(send_sock).context("io_uring send ring")?),
            false => Box::new(MmsgTx::new(send_sock)),
        };
        let mut core_loop = CoreLoop::new(&cfg, &mut id, bound, tx, Arc::clone(&metrics))?;
        // The io threads start once the core can take what they receive: a node started on a
        // full socket buffer would otherwise shed its first batches while the core is built.
        let mut io_threads = Vec::new();
        let receiving_since = Instant::now();
        for (i, rx) in rxs.into_iter().enumerate() {
            let ingress = pool.ingress()?;
            let (m, s) = (Arc::clone(&metrics), Arc::clone(&stop));
            let core = cores.get(i % cores.len().max(1)).copied();
            io_threads.push(std::thread::Builder::new().name(format!("io-{i}")).spawn(
                move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    io_loop(rx, ingress, &m, &s);
                },
            )?);
        }
        let crash = Arc::new(AtomicBool::new(false));
        let (m, s, c) = (Arc::clone(&metrics), Arc::clone(&stop), Arc::clone(&crash));
        let core = std::thread::Builder::new()
            .name("core".into())
            .spawn(move || {
                if let Some(c) = core_thread_core {
                    core_affinity::set_for_current(c);
                }
                let _lock = port_lock;
                let result = core_loop.run(&verdicts, &ctl_rx, &s, &c, &pool, &mut id.epoch);
                s.store(true, Ordering::Relaxed);
                for t in io_threads {
                    let _ = t.join();
                }
                pool.shutdown();
                let _ = std::fs::remove_file(&cfg.control);
                drop(m);
                result
            })?;
        Ok(Node {
            bound,
            metrics,
            receiving_since,
            stop,
            crash,
            core,
        })
    }

    /// Stops at once without telling anyone, as a crash would (tests and harnesses).
    pub fn kill(self) -> anyhow::Result<()> {
        self.crash.store(true, Ordering::Relaxed);
        self.wait()
    }

    /// Asks the node to leave the cluster and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits until the node has left and every thread has ended.
    pub fn wait(self) -> anyhow::Result<()> {
        self.core
            .join()
            .map_err(|_| anyhow::anyhow!("the core thread panicked"))?
    }
}

fn io_loop(
    mut rx: Box<dyn Receiver + Send>,
    mut ingress: verify_pool::Ingress,
    m: &Metrics,
    stop: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(HANDOFF_MAX);
    let mut truncated = 0;
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        if let Err(e) = rx.recv_batch(&mut batch, IDLE_WAIT) {
            tracing::error!("receive on {} failed: {e}", rx.name());
            std::thread::sleep(IDLE_WAIT);
            continue;
        }
        // While receives come back full, more is waiting: take it without blocking, up to
        // HANDOFF_MAX, so one hand-off (and one wake-up of the core thread) carries it all.
        let mut last = batch.len();
        while last == io::mmsg::BATCH && batch.len() < HANDOFF_MAX {
            match rx.recv_batch(&mut batch, Duration::ZERO) {
                Ok(n) => last = n,
                Err(e) => {
                    tracing::error!("receive on {} failed: {e}", rx.name());
                    break;
                }
            }
        }
        if rx.truncated() != truncated {
            Metrics::add(&m.drop_truncated, rx.truncated() - truncated);
            truncated = rx.truncated();
        }
        if batch.is_empty() {
            continue;
        }
        Metrics::add(&m.datagrams_in, batch.len() as u64);
        Metrics::add(&m.bytes_in, batch.iter().map(|d| d.buf.len() as u64).sum());
        let admits = ingress.submit(
            batch.drain(..).map(|d| verify_pool::Datagram {
                buf: d.buf,
                origin: Some(d.from.ip()),
            }),
            Instant::now(),
        );
        // A byte-identical copy of a datagram already verified is a replay.
        let dups = admits
            .iter()
            .filter(|a| matches!(a, Admit::Duplicate(_)))
            .count();
        Metrics::add(&m.drop_replay, dups as u64);
    }
}

/// Most datagrams an io thread hands to the pool at once, when its socket holds that many:
/// handed off 64 at a time, waking the core thread (a futex syscall and an IPI on this VM) was
/// a fourteenth of the io thread in the ingest burst.
const HANDOFF_MAX: usize = 4 * io::mmsg::BATCH;
/// Verdicts the channel to the core thread holds when the io threads verify: as many as the
/// pool's default channel of full worker batches.
const VERDICTS_IN_FLIGHT: usize = verify_pool::QUEUE_BATCHES * verify_pool::DEFAULT_BATCH;

/// x86-64's (and most aarch64 cores') cache line.
const CACHE_LINE: usize = 64;

/// Reads every cache line of a verdict batch's datagrams before any is processed. The kernel
/// wrote them on the io thread's core, so each is a cache miss here; touched together, the
/// misses overlap instead of being paid one datagram at a time. Measured in the ingest burst
/// (30 runs each way, interleaved): median accepted/raw 0.68 -> 0.73 (io_uring) and
/// 0.62 -> 0.66 (recvmmsg).
fn prefetch(batch: &[Output]) {
    let mut sum = 0u8;
    for out in batch {
        if let Outcome::Verified(v) = &out.outcome {
            let body = v.body();
            for b in body.iter().step_by(CACHE_LINE).chain(body.last()) {
                sum ^= *b;
            }
        }
    }
    std::hint::black_box(sum);
}

/// The core thread's state.
struct CoreLoop {
    core: Core,
    sealer: Sealer,
    replay: ReplayGuard,
    tx: Box<dyn Transmitter + Send>,
    metrics: Arc<Metrics>,
    roster: Arc<codec::Roster>,
    ring: Option<codec::SharedKeyRing>,
    mtu: usize,
    /// The signatures messages must carry (checked once per unique statement).
    rules: Rules,
    deliveries: VecDeque<Delivery>,
    /// Sealed datagrams waiting for the next flush.
    outbox: Vec<(SocketAddr, Bytes)>,
    leaving: Option<Instant>,
}

impl CoreLoop {
    fn new(
        cfg: &RunConfig,
        id: &mut Identity,
        bound: SocketAddr,
        tx: Box<dyn Transmitter + Send>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<CoreLoop> {
        let tag = id.roster.cluster_tag();
        let book = Arc::new(AddressBook::new(
            id.roster.members().map(|m| (m.id, m.addr)),
        ));
        let ccfg = CoreConfig {
            suite: id.suite,
            cluster_tag: tag,
            mtu: cfg.mtu,
            probe_interval: cfg.probe_interval,
            probe_timeout: cfg.probe_timeout,
            gossip_interval: cfg.gossip_interval,
            fanout: cfg.fanout,
            retransmit_mult: cfg.retransmit_mult,
            suspicion_mult: cfg.suspicion_mult,
            authority: cfg.tolerance,
            origin_rumor_cap: cfg.origin_rumor_cap,
            ..CoreConfig::default()
        };
        let epoch = id.epoch.current();
        let mut boot = Boot::from_epoch(id.member, epoch, rand::random());
        boot.signer = id.suite.signs_origin().then(|| Arc::clone(&id.secret));
        boot.advertise = Some(bound);
        let now = unix_ms();
        let mut core = Core::new(ccfg, Arc::clone(&book), boot, Millis(now))?;
        let seeds: Vec<MemberId> = cfg
            .seeds
            .iter()
            .filter_map(|a| book.id_at_addr(*a))
            .filter(|s| *s != id.member)
            .collect();
        if seeds.len() < cfg.seeds.iter().filter(|a| **a != bound).count() {
            tracing::warn!("some --seeds are not roster addresses and were ignored");
        }
        core.join(Millis(now), &seeds);
        let hop = HopKeys::for_suite(id.suite, id.ring.as_ref(), &id.secret)
            .context("this suite needs --cluster-key")?;
        let sealer = Sealer::new(id.suite, tag, id.member, epoch, hop, &mut rand::rngs::OsRng)?;
        Ok(CoreLoop {
            core,
            sealer,
            replay: ReplayGuard::new(ReplayConfig::default(), now),
            tx,
            metrics,
            roster: Arc::clone(&id.roster),
            ring: id.ring.clone(),
            mtu: cfg.mtu,
            rules: Rules {
                cluster_tag: tag,
                origin_signed: id.suite.signs_origin(),
                authority: cfg.tolerance.is_some(),
            },
            // Sized once: grown by doubling, a fresh node under a burst spent an eighth of its core
            // thread copying the log (realloc); untouched pages cost nothing until used.
            deliveries: VecDeque::with_capacity(DELIVERIES_KEPT),
            outbox: Vec::new(),
            leaving: None,
        })
    }

    fn run(
        &mut self,
        verdicts: &ChanRx<Vec<Output>>,
        ctl: &ChanRx<ControlMsg>,
        stop: &AtomicBool,
        crash: &AtomicBool,
        pool: &Pool,
        epochs: &mut codec::epoch::EpochStore,
    ) -> anyhow::Result<()> {
        let mut gauges_at = Instant::now();
        loop {
            let now = unix_ms();
            if crash.load(Ordering::Relaxed) {
                return Ok(());
            }
            if stop.load(Ordering::Relaxed) && self.leaving.is_none() {
                tracing::info!("leaving the cluster");
                self.core.leave(Millis(now));
                self.leaving = Some(Instant::now());
            }
            if self.leaving.is_some_and(|t| t.elapsed() >= LEAVE_GRACE) {
                return Ok(());
            }
            let wait = self
                .core
                .poll_timeout()
                .map_or(IDLE_WAIT, |t| {
                    Duration::from_millis(t.0.saturating_sub(now))
                })
                .min(IDLE_WAIT);
            channel::select! {
                recv(verdicts) -> b => if let Ok(b) = b {
                    let now = self.apply(b);
                    self.take_actions(now, epochs)?;
                    // Under load, take what else is queued before timers and sends: one
                    // wake-up, one flush for many batches (bounded in time, so timers stay
                    // on time).
                    let until = Instant::now() + DRAIN_FOR;
                    while Instant::now() < until {
                        let Ok(b) = verdicts.try_recv() else { break };
                        let now = self.apply(b);
                        self.take_actions(now, epochs)?;
                    }
                },
                recv(ctl) -> r => if let Ok((req, reply)) = r { let _ = reply.send(self.control(req)); },
                default(wait) => {}
            }
            let now = unix_ms();
            if self.core.poll_timeout().is_some_and(|t| t.0 <= now) {
                self.core.handle_timeout(Millis(now));
            }
            self.flush(now, epochs)?;
            if gauges_at.elapsed() >= GAUGE_PERIOD {
                self.gauges(pool);
                gauges_at = Instant::now();
            }
        }
    }

    /// Applies verified datagrams: anti-replay commit, decode, origin signatures, the core.
    /// Returns the clock reading it applied them at.
    fn apply(&mut self, batch: Vec<Output>) -> u64 {
        let m = Arc::clone(&self.metrics);
        // One clock read per batch: a batch spans microseconds, and this VM's clock reads are
        // not free.
        let now = unix_ms();
        prefetch(&batch);
        let signs = self.rules.origin_signed || self.rules.authority;
        let mut checks = Checks::default();
        let mut ready = Vec::with_capacity(batch.len());
        for out in batch {
            let v = match out.outcome {
                Outcome::Verified(v) => v,
                Outcome::Duplicate(_) => {
                    Metrics::add(&m.drop_replay, 1);
                    continue;
                }
                Outcome::Rejected(_) => {
                    Metrics::add(&m.drop_auth, 1);
                    continue;
                }
            };
            if self.replay.commit(now, &v).is_err() {
                Metrics::add(&m.drop_replay, 1);
                continue;
            }
            let sender = v.header().sender;
            let Ok(msgs) = v.decode_messages() else {
                Metrics::add(&m.drop_bad_body, 1);
                continue;
            };
            let ids: Vec<Option<CheckId>> = if signs {
                msgs.iter()
                    .map(|msg| {
                        (self.rules.applies(msg) && self.core.is_news(Millis(now), msg))
                            .then(|| checks.add(&self.rules, &*self.roster, msg))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ready.push((sender, msgs, ids));
        }
        Metrics::add(&m.origin_verifications, checks.signatures() as u64);
        let verdicts = checks.verify(&mut rand::thread_rng());
        for (sender, mut msgs, ids) in ready {
            if signs {
                let mut ids = ids.into_iter();
                msgs.retain(|msg| {
                    let ok = match ids.next().flatten() {
                        Some(id) => verdicts.ok(id),
                        None => self.provenance_ok(Millis(now), msg),
                    };
                    if !ok {
                        Metrics::add(&m.drop_bad_origin_signature, 1);
                    }
                    ok
                });
            }
            Metrics::add(&m.accepted, 1);
            self.core.handle_datagram(Millis(now), sender, msgs);
        }
        now
    }

    /// End-to-end signature checks of one message (rumor origins; with the authority layer
    /// every statement, certificate and proof), paid once per unique statement: what the core
    /// already knows, or would drop anyway, is passed through unchecked and dropped there. The
    /// batch in `apply` asks the core before applying any of its datagrams, and
    /// what the core knows only grows; this asks again at the message's turn, so a message the
    /// batch passed unchecked is still checked if it has become news.
    fn provenance_ok(&self, now: Millis, msg: &Message) -> bool {
        if !self.rules.applies(msg) || !self.core.is_news(now, msg) {
            return true;
        }
        let mut one = Checks::default();
        let id = one.add(&self.rules, &*self.roster, msg);
        Metrics::add(&self.metrics.origin_verifications, one.signatures() as u64);
        one.verify(&mut rand::thread_rng()).ok(id)
    }

    /// Carries out the core's actions and sends what they sealed.
    fn flush(&mut self, now: u64, epochs: &mut codec::epoch::EpochStore) -> anyhow::Result<()> {
        self.take_actions(now, epochs)?;
        if !self.outbox.is_empty() {
            let m = &self.metrics;
            let sent = self.tx.send_batch(&self.outbox);
            Metrics::add(&m.datagrams_out, sent.datagrams);
            Metrics::add(&m.bytes_out, sent.bytes);
            Metrics::add(&m.send_errors, sent.errors);
            self.outbox.clear();
        }
        Ok(())
    }

    /// Carries out the core's actions (deliver, log membership changes), sealing its sends
    /// into the outbox. Taken after every verdict batch, not only at the flush: a burst's
    /// deliveries otherwise piled up in the core's action queue between flushes, and growing
    /// it (fresh pages) was a sixth of the core thread.
    fn take_actions(
        &mut self,
        now: u64,
        epochs: &mut codec::epoch::EpochStore,
    ) -> anyhow::Result<()> {
        let m = Arc::clone(&self.metrics);
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Send { to, messages } => {
                    let Some(addr) = self.core.addr_of(to) else {
                        Metrics::add(&m.send_errors, 1);
                        continue;
                    };
                    for d in self.seal(now, &messages, epochs)? {
                        self.outbox.push((addr, d));
                    }
                }
                Action::Deliver(r) => {
                    Metrics::add(&m.rumors_delivered, 1);
                    Metrics::add(&m.dissemination_ms_sum, now.saturating_sub(r.timestamp_ms));
                    self.record(Delivery {
                        origin: r.origin,
                        seq: r.seq,
                        at_ms: now,
                        digest: crate::control::payload_digest(&r.payload),
                    });
                }
                Action::MemberChanged {
                    id,
                    state,
                    incarnation,
                    ..
                } => {
                    tracing::info!(member = id, ?state, incarnation, "member changed");
                }
                Action::Excluded(id) => {
                    tracing::warn!(member = id, "equivocation proven: member excluded");
                }
            }
        }
        Ok(())
    }

    /// Packs `messages` (the core already sized them for one datagram) and seals them; starts a
    /// new epoch if this one's counter is exhausted.
    fn seal(
        &mut self,
        now: u64,
        messages: &[Message],
        epochs: &mut codec::epoch::EpochStore,
    ) -> anyhow::Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut p = Packet::new(self.sealer.suite(), self.mtu)?;
        for msg in messages {
            if !p.push(msg)? {
                out.push(std::mem::replace(
                    &mut p,
                    Packet::new(self.sealer.suite(), self.mtu)?,
                ));
                if !p.push(msg)? {
                    tracing::warn!("a message larger than the MTU was dropped");
                }
            }
        }
        if !p.is_empty() {
            out.push(p);
        }
        let mut sealed = Vec::with_capacity(out.len());
        for p in out {
            let d = match self.sealer.seal(now, p) {
                Err(SealError::CounterExhausted) => {
                    let e = epochs.advance(now / 1000)?;
                    self.sealer.start_epoch(e, &mut rand::rngs::OsRng);
                    // The packet was consumed; gossip resends what it carried, so dropping this
                    // one datagram (once per 2^64) is cheaper than keeping a copy of every packet.
                    tracing::warn!(
                        "datagram counter exhausted; new epoch {e} started, one datagram dropped"
                    );
                    continue;
                }
                r => r?,
            };
            sealed.push(d);
        }
        Ok(sealed)
    }

    fn record(&mut self, d: Delivery) {
        if self.deliveries.len() == DELIVERIES_KEPT {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(d);
    }

    fn gauges(&self, pool: &Pool) {
        let m = &self.metrics;
        let (mut alive, mut suspect, mut dead) = (0, 0, 0);
        for (_, state, _) in self.core.members() {
            match state {
                MemberState::Alive => alive += 1,
                MemberState::Suspect => suspect += 1,
                MemberState::Dead | MemberState::Left => dead += 1,
            }
        }
        Metrics::set(&m.members_alive, alive);
        Metrics::set(&m.members_suspect, suspect);
        Metrics::set(&m.members_dead, dead);
        let c = self.core.stats();
        for (counter, v) in [
            (&m.probe_failures, c.probe_failures),
            (&m.suspicions_raised, c.suspicions_raised),
            (&m.refutations, c.refutations),
            (&m.reconnects, c.reconnects),
            (&m.deaths_declared, c.deaths_declared),
            (&m.deaths_committed, c.deaths_committed),
            (&m.votes_cast, c.votes_cast),
            (&m.votes_withheld, c.votes_withheld),
            (&m.votes_received, c.votes_received),
            (&m.votes_refused, c.votes_refused),
            (&m.certificates_formed, c.certificates_formed),
            (&m.certificates_refused, c.certificates_refused),
            (&m.statements_refused, c.statements_refused),
            (&m.accusations_refused, c.accusations_refused),
            (&m.equivocators_excluded, c.equivocators_excluded),
            (&m.proofs_refused, c.proofs_refused),
            (&m.rumors_excluded, c.rumors_excluded),
            (&m.rumors_over_cap, c.rumors_over_cap),
            (&m.implausible, c.implausible),
            (&m.broadcasts_too_large, c.broadcasts_too_large),
        ] {
            Metrics::set(counter, v);
        }
        let s = pool.stats();
        let shed = |r: ShedReason| s.shed[r.index()];
        Metrics::set(&m.verified, s.verified);
        Metrics::set(&m.verifications, s.verifications);
        Metrics::set(&m.dedup_hits, s.dedup_hits + s.dedup_waits);
        Metrics::set(&m.drop_malformed, s.malformed);
        Metrics::set(&m.drop_unknown_sender, shed(ShedReason::UnknownSender));
        Metrics::set(
            &m.drop_rate_limited,
            shed(ShedReason::SenderRate) + shed(ShedReason::OriginRate),
        );
        Metrics::set(&m.drop_duplicate_shed, shed(ShedReason::Duplicate));
        Metrics::set(&m.drop_heavy_sender, shed(ShedReason::HeavySender));
        Metrics::set(&m.drop_queue_full, shed(ShedReason::QueueFull));
        Metrics::set(&m.drop_core_backlog, s.undelivered);
        Metrics::set(&m.shed, s.shed.iter().sum());
        Metrics::set(&m.verify_queue_wait_p99_us, s.queue_wait_us.p99);
        Metrics::set(&m.verify_batch_p99_us, s.verify_batch_us.p99);
    }

    fn control(&mut self, req: Request) -> Response {
        let now = unix_ms();
        let err = |message: String| Response::Error { message };
        match req {
            Request::Members => {
                let me = self.core.id();
                let members = self
                    .core
                    .members()
                    .map(|(id, state, incarnation)| MemberView {
                        id,
                        state: state_name(state).into(),
                        incarnation,
                        addr: self.core.addr_of(id).map(|a| a.to_string()),
                        // Without the authority layer the soft view is the decision; with it,
                        // Dead is reached only through a verified certificate.
                        committed_dead: state == MemberState::Dead,
                        excluded: self.core.is_excluded(id),
                    })
                    .collect();
                Response::Members { me, members }
            }
            Request::Publish { payload_hex } => {
                let Ok(payload) = hex::decode(payload_hex.trim()) else {
                    return err("payload_hex is not hex".into());
                };
                let digest = crate::control::payload_digest(&payload);
                match self.core.publish(Millis(now), payload.into()) {
                    Ok(seq) => {
                        Metrics::add(&self.metrics.rumors_published, 1);
                        Metrics::add(&self.metrics.rumors_delivered, 1);
                        self.record(Delivery {
                            origin: self.core.id(),
                            seq,
                            at_ms: now,
                            digest,
                        });
                        Response::Published {
                            origin: self.core.id(),
                            seq,
                            at_ms: now,
                        }
                    }
                    Err(e) => err(e.to_string()),
                }
            }
            Request::Stats { since_ms } => Response::Stats {
                counters: self.metrics.snapshot(),
                deliveries: self
                    .deliveries
                    .iter()
                    .filter(|d| d.at_ms >= since_ms)
                    .cloned()
                    .collect(),
            },
            Request::KeysList => match &self.ring {
                Some(r) => {
                    let s = r.snapshot();
                    Response::Keys {
                        primary: s.primary_id(),
                        installed: s.ids().collect(),
                    }
                }
                None => err("this node's suite uses no cluster key ring".into()),
            },
            Request::KeysInstall { path } => self.with_ring(|r| {
                let f = ClusterKeyFile::load(Path::new(&path)).map_err(|e| e.to_string())?;
                r.install(f.key_id, f.key).map_err(|e| e.to_string())
            }),
            Request::KeysUse { key_id } => {
                self.with_ring(|r| r.use_key(key_id).map_err(|e| e.to_string()))
            }
            Request::KeysRemove { key_id } => {
                self.with_ring(|r| r.remove(key_id).map_err(|e| e.to_string()))
            }
            Request::Leave => {
                if self.leaving.is_none() {
                    self.core.leave(Millis(now));
                    self.leaving = Some(Instant::now());
                }
                Response::Ok
            }
        }
    }

    fn with_ring(&self, f: impl FnOnce(&codec::SharedKeyRing) -> Result<(), String>) -> Response {
        match &self.ring {
            Some(r) => match f(r) {
                Ok(()) => Response::Ok,
                Err(message) => Response::Error { message },
            },
            None => Response::Error {
                message: "this node's suite uses no cluster key ring".into(),
            },
        }
    }
}

pub fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

/// Serves the control socket on a detached thread (the process exit ends it).
fn serve_control(path: &Path, tx: ChanTx<ControlMsg>) -> anyhow::Result<()> {
    // The state directory is locked by this process, so a socket file there is a stale one.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("control socket {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("control socket {}", path.display()))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let Ok(r) = conn.try_clone() else { continue };
                let reply = match BufReader::new(r.take(MAX_REQUEST as u64)).read_line(&mut line) {
                    Err(e) => Response::Error {
                        message: format!("reading request: {e}"),
                    },
                    Ok(_) => match serde_json::from_str::<Request>(&line) {
                        Err(e) => Response::Error {
                            message: format!("bad request: {e}"),
                        },
                        Ok(req) => {
                            let (rtx, rrx) = channel::bounded(1);
                            if tx.send((req, rtx)).is_err() {
                                return;
                            }
                            rrx.recv_timeout(Duration::from_secs(5))
                                .unwrap_or(Response::Error {
                                    message: "the node did not answer".into(),
                                })
                        }
                    },
                };
                let mut conn = conn;
                if let Ok(mut text) = serde_json::to_string(&reply) {
                    text.push('\n');
                    let _ = conn.write_all(text.as_bytes());
                }
            }
        })?;
    Ok(())
}

/// Serves Prometheus text metrics over minimal HTTP/1.0 on a detached thread.
fn serve_metrics(addr: SocketAddr, m: Arc<Metrics>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("--metrics-addr {addr}"))?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = [0u8; 1024];
            let _ = conn.read(&mut req);
            let body = m.prometheus();
            let head = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body.as_bytes()));
        }
    })?;
    Ok(())
}
