//! A deterministic in-memory network that drives many real `Core`s on one virtual clock: seeded
//! latency and loss, crashes, restarts and a drop filter. The core's tests use it; the simulator
//! of issue 7 can start from it (it drives the one protocol implementation, never a model).
//! Timers are indexed (one entry per running core), so an event costs O(log n) routing plus the
//! core's own work.
//! It checks the core's own promises as it runs (every datagram fits the MTU; timers advance)
//! and panics when one is broken: it is a test instrument.
//! Concurrency: single-threaded; owns every core it drives.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codec::{MemberId, MemberState, Message, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::pack::empty_packet;
use super::{Action, Boot, Config, Core, Millis, Roster};

/// Decides whether a datagram `(now, from, to, messages)` is dropped.
pub type DropFilter = Box<dyn FnMut(Millis, MemberId, MemberId, &[Message]) -> bool>;

/// What one member did, in the order it did it.
#[derive(Default)]
pub struct Node {
    pub core: Option<Core>,
    /// (time, origin, seq) of each rumor delivered to the application.
    pub delivered: Vec<(Millis, MemberId, u64)>,
    /// (time, member, state, incarnation) of each change in this member's view.
    pub changes: Vec<(Millis, MemberId, MemberState, u64)>,
    /// (time, member) of each equivocator this member excluded.
    pub excluded: Vec<(Millis, MemberId)>,
}

struct Flight {
    from: MemberId,
    to: MemberId,
    messages: Vec<Message>,
}

pub struct Net {
    now: Millis,
    cfg: Config,
    roster: Arc<Roster>,
    seed: u64,
    nodes: Vec<Node>,
    flights: BTreeMap<(Millis, u64), Flight>,
    /// Every running core's next timer, and the key it is filed under.
    timers: BTreeSet<(Millis, MemberId)>,
    filed: Vec<Option<Millis>>,
    flight_seq: u64,
    rng: StdRng,
    /// One-way latency, uniform in this inclusive range of milliseconds.
    pub latency_ms: (u64, u64),
    /// Probability that a datagram is lost.
    pub loss: f64,
    filter: Option<DropFilter>,
    trace: Option<Vec<(Millis, MemberId, Action)>>,
    /// Datagrams put on the wire / lost / filtered.
    pub sent: u64,
    pub lost: u64,
}

impl Net {
    /// Members `0..n` (none running yet), all with `cfg`, every random choice derived from `seed`.
    pub fn new(n: u32, cfg: Config, seed: u64) -> Net {
        Net {
            now: Millis(0),
            cfg,
            roster: Arc::new(Roster::dense(n)),
            seed,
            nodes: (0..n).map(|_| Node::default()).collect(),
            flights: BTreeMap::new(),
            timers: BTreeSet::new(),
            filed: vec![None; n as usize],
            flight_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            latency_ms: (1, 10),
            loss: 0.0,
            filter: None,
            trace: None,
            sent: 0,
            lost: 0,
        }
    }

    pub fn now(&self) -> Millis {
        self.now
    }

    /// Records every action of every core from now on, for determinism checks.
    pub fn enable_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub fn trace(&self) -> &[(Millis, MemberId, Action)] {
        self.trace.as_deref().unwrap_or_default()
    }

    pub fn set_filter(&mut self, f: DropFilter) {
        self.filter = Some(f);
    }

    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Boots member `id` (again, after a crash) with boot epoch `epoch` and joins through `seeds`.
    pub fn start(&mut self, id: MemberId, epoch: u64, seeds: &[MemberId]) {
        let mut boot = Boot::from_epoch(id, epoch, self.seed ^ (u64::from(id) << 32) ^ epoch);
        if self.cfg.suite.signs_origin() {
            let mut krng = StdRng::seed_from_u64(boot.rng_seed);
            boot.signer = Some(Arc::new(SecretKey::generate(&mut krng)));
        }
        let mut core = match Core::new(self.cfg.clone(), self.roster.clone(), boot, self.now) {
            Ok(c) => c,
            Err(e) => panic!("testnet: cannot boot member {id}: {e}"),
        };
        core.join(self.now, seeds);
        self.nodes[id as usize].core = Some(core);
        self.drain(id);
    }

    /// Stops member `id` without a word, as SIGKILL would.
    pub fn crash(&mut self, id: MemberId) {
        self.nodes[id as usize].core = None;
        self.refile(id);
    }

    pub fn node(&self, id: MemberId) -> &Node {
        &self.nodes[id as usize]
    }

    pub fn core(&self, id: MemberId) -> Option<&Core> {
        self.nodes[id as usize].core.as_ref()
    }

    /// Ids of running members.
    pub fn running(&self) -> Vec<MemberId> {
        (0..self.nodes.len() as MemberId)
            .filter(|i| self.nodes[*i as usize].core.is_some())
            .collect()
    }

    pub fn publish(&mut self, id: MemberId, payload: Bytes) -> Option<u64> {
        let now = self.now;
        let seq = self.nodes[id as usize]
            .core
            .as_mut()?
            .publish(now, payload)
            .ok();
        self.drain(id);
        seq
    }

    pub fn leave(&mut self, id: MemberId) {
        let now = self.now;
        if let Some(c) = self.nodes[id as usize].core.as_mut() {
            c.leave(now);
        }
        self.drain(id);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Delivers datagrams and fires timers in time order up to `until` (datagrams first on ties).
    pub fn run_until(&mut self, until: Millis) {
        loop {
            let flight = self.flights.first_key_value().map(|(k, _)| k.0);
            let timer = self.timers.first().copied();
            let at = match (flight, timer) {
                (Some(f), Some((t, _))) => f.min(t),
                (Some(f), None) => f,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            let now = self.now;
            if flight == Some(at) {
                if let Some((_, f)) = self.flights.pop_first() {
                    if let Some(core) = self.nodes[f.to as usize].core.as_mut() {
                        core.handle_datagram(now, f.from, f.messages);
                        self.drain(f.to);
                    }
                }
            } else if let Some((_, id)) = timer {
                if let Some(core) = self.nodes[id as usize].core.as_mut() {
                    core.handle_timeout(now);
                    if let Some(next) = core.poll_timeout() {
                        assert!(
                            next > now,
                            "member {id}: timer at {next:?} not advanced past {now:?}"
                        );
                    }
                    self.drain(id);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Files member `id`'s next timer again after the core was handed anything.
    fn refile(&mut self, id: MemberId) {
        if let Some(t) = self.filed[id as usize].take() {
            self.timers.remove(&(t, id));
        }
        if let Some(t) = self.nodes[id as usize]
            .core
            .as_ref()
            .and_then(Core::poll_timeout)
        {
            self.timers.insert((t, id));
            self.filed[id as usize] = Some(t);
        }
    }

    /// Routes what member `id` asked for and refiles its timer.
    fn drain(&mut self, id: MemberId) {
        self.refile(id);
        let now = self.now;
        let Some(core) = self.nodes[id as usize].core.as_mut() else {
            return;
        };
        let actions: Vec<Action> = core.drain_actions().collect();
        for a in actions {
            if let Some(t) = self.trace.as_mut() {
                t.push((now, id, a.clone()));
            }
            match a {
                Action::Send { to, messages } => self.transmit(id, to, messages),
                Action::Deliver(r) => self.nodes[id as usize]
                    .delivered
                    .push((now, r.origin, r.seq)),
                Action::MemberChanged {
                    id: m,
                    state,
                    incarnation,
                    ..
                } => self.nodes[id as usize]
                    .changes
                    .push((now, m, state, incarnation)),
                Action::Excluded(m) => self.nodes[id as usize].excluded.push((now, m)),
            }
        }
    }

    /// Puts a datagram from `from` (running or not: an adversary) on the wire to `to`.
    pub fn inject(&mut self, from: MemberId, to: MemberId, messages: Vec<Message>) {
        self.transmit(from, to, messages);
    }

    fn transmit(&mut self, from: MemberId, to: MemberId, messages: Vec<Message>) {
        let mut packet = empty_packet(&self.cfg);
        for m in &messages {
            assert!(
                packet.push(m).unwrap_or(false),
                "member {from}: datagram to {to} exceeds the MTU"
            );
        }
        self.sent += 1;
        let filtered = self
            .filter
            .as_mut()
            .is_some_and(|f| f(self.now, from, to, &messages));
        if filtered
            || (self.loss > 0.0 && self.rng.gen_bool(self.loss))
            || to as usize >= self.nodes.len()
        {
            self.lost += 1;
            return;
        }
        let at = self.now
            + Duration::from_millis(self.rng.gen_range(self.latency_ms.0..=self.latency_ms.1));
        self.flight_seq += 1;
        self.flights
            .insert((at, self.flight_seq), Flight { from, to, messages });
    }
}
