//! The discrete-event world the simulator runs: N real `rumor::core::Core`s on one virtual clock
//! (microseconds; the cores see whole milliseconds), a network (latency, loss, a partition) and
//! a CPU per member. Each member's CPU serves one thing at a time: a received datagram waits
//! behind earlier ones (and is shed when `queue_cap` are already waiting), its cost comes from the
//! [`CostModel`], and every datagram the member sends occupies the CPU before it leaves. So an
//! overloaded member queues, delays and sheds as a real one does, and utilisation is its busy
//! time over elapsed time.
//! Reference: the event-list (next-event time advance) discrete-event simulation of Law and
//! Kelton, "Simulation Modeling and Analysis", ch. 1; ties are broken by insertion order, so one
//! seed gives one history.
//! Concurrency: single-threaded; owns every core it drives.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use codec::{MemberId, MemberState, Message, Packet, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumor::core::{Action, Boot, Config, Core, Millis, Roster};

use super::cost::{CostModel, Incoming};
use super::queue::EventQueue;

const US_PER_MS: u64 = 1000;
/// Members a restarted member joins through (the first live ones by id).
const JOIN_SEEDS: usize = 3;

/// A partition: members with id below `side` cannot reach the others, nor the others them,
/// between `from_us` and `until_us`.
#[derive(Clone, Copy, Debug)]
pub struct Partition {
    pub from_us: u64,
    pub until_us: u64,
    pub side: MemberId,
}

#[derive(Clone, Debug)]
pub struct NetModel {
    /// One-way latency, uniform in this inclusive range, µs.
    pub latency_us: (u64, u64),
    /// Probability that a datagram is lost on the wire.
    pub loss: f64,
    pub partition: Option<Partition>,
}

#[derive(Clone, Debug)]
pub struct CpuModel {
    pub costs: CostModel,
    /// Fraction of one core each member may use: costs are divided by it.
    pub budget: f64,
    /// Members draw on one pool of `budget` × n cores, first come first served, as processes
    /// sharing one machine (or one cgroup quota) do, instead of each owning its own slice.
    pub shared: bool,
    /// Cores each member spends whatever the traffic (timers, bookkeeping), out of `budget`:
    /// 0 unless measured on a real cluster's idle phase (the real shift's calibration).
    pub background: f64,
    /// Received datagrams waiting for the CPU beyond which new ones are shed (the io thread's
    /// bounded queue).
    pub queue_cap: u32,
}

impl CpuModel {
    /// Each member owns `budget` of a core, all of it for datagrams.
    pub fn slice(costs: CostModel, budget: f64, queue_cap: u32) -> CpuModel {
        CpuModel {
            costs,
            budget,
            shared: false,
            background: 0.0,
            queue_cap,
        }
    }
}

/// Network and CPU counters over the whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub sent: u64,
    pub bytes: u64,
    pub lost: u64,
    pub partitioned: u64,
    pub to_crashed: u64,
    pub shed: u64,
    pub max_backlog: u32,
    /// Members convicted of equivocation (none, unless the core has a bug: nobody lies here).
    pub excluded: u64,
}

/// One application rumor's spread.
#[derive(Clone, Debug)]
pub struct Track {
    pub published_us: u64,
    pub delivered: u32,
    pub last_us: u64,
}

#[derive(Default)]
struct Member {
    core: Option<Core>,
    epoch: u64,
    busy_until: u64,
    backlog: u32,
    busy_us: f64,
    /// The time this member's timer is filed under in the event list.
    timer: Option<u64>,
}

enum Kind {
    Timer(MemberId),
    Arrive {
        from: MemberId,
        to: MemberId,
        bytes: usize,
        messages: Vec<Message>,
    },
    Process {
        from: MemberId,
        to: MemberId,
        epoch: u64,
        messages: Vec<Message>,
    },
}

pub struct World {
    now: u64,
    cfg: Config,
    roster: Arc<Roster>,
    seed: u64,
    members: Vec<Member>,
    events: EventQueue<Kind>,
    rng: StdRng,
    net: NetModel,
    cpu: CpuModel,
    /// When the shared CPU pool is booked until (with `CpuModel::shared`).
    shared_until: u64,
    pub counters: Counters,
    rumors: BTreeMap<(MemberId, u64), Track>,
    /// The member whose first suspicion (by anyone) is being timed, and when it came.
    watch: Option<(MemberId, Option<u64>)>,
    /// Reused by every event instead of allocated per event: a member's actions while they are
    /// carried out, and the packet a datagram is measured in (`None` if the suite and MTU make
    /// none, which `Config::validate` rules out: every datagram then counts as a full MTU).
    actions: Vec<Action>,
    packet: Option<Packet>,
}

/// Incarnation every member boots with at `epoch` (what `assume_alive` is told).
fn boot_incarnation(epoch: u64) -> u64 {
    Boot::from_epoch(0, epoch, 0).incarnation
}

impl World {
    /// `n` members, every one booted at epoch 1 with the whole roster assumed alive (a cluster
    /// at rest, see `Core::assume_alive`). All randomness derives from `seed`.
    pub fn converged(
        n: u32,
        cfg: Config,
        net: NetModel,
        cpu: CpuModel,
        seed: u64,
    ) -> anyhow::Result<World> {
        if !(cpu.budget > cpu.background && cpu.background >= 0.0) {
            anyhow::bail!(
                "a CPU budget of {} cores per member leaves nothing beside its background of {}",
                cpu.budget,
                cpu.background
            );
        }
        let packet = Packet::new(cfg.suite, cfg.mtu).ok();
        let mut w = World {
            now: 0,
            roster: Arc::new(Roster::dense(n)),
            cfg,
            seed,
            members: (0..n).map(|_| Member::default()).collect(),
            events: EventQueue::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00),
            net,
            cpu,
            shared_until: 0,
            counters: Counters::default(),
            rumors: BTreeMap::new(),
            watch: None,
            actions: Vec::new(),
            packet,
        };
        let inc = boot_incarnation(1);
        for id in 0..n {
            let mut core = w.boot(id, 1)?;
            core.assume_alive(w.now_ms(), (0..n).map(|j| (j, inc)));
            w.members[id as usize].core = Some(core);
            w.members[id as usize].epoch = 1;
            w.drain(id);
        }
        Ok(w)
    }

    fn boot(&self, id: MemberId, epoch: u64) -> anyhow::Result<Core> {
        let mut boot = Boot::from_epoch(id, epoch, self.seed ^ (u64::from(id) << 32) ^ epoch);
        if self.cfg.suite.signs_origin() {
            let mut krng = StdRng::seed_from_u64(boot.rng_seed);
            boot.signer = Some(Arc::new(SecretKey::generate(&mut krng)));
        }
        Ok(Core::new(
            self.cfg.clone(),
            self.roster.clone(),
            boot,
            self.now_ms(),
        )?)
    }

    pub fn now_us(&self) -> u64 {
        self.now
    }

    fn now_ms(&self) -> Millis {
        Millis(self.now / US_PER_MS)
    }

    pub fn core(&self, id: MemberId) -> Option<&Core> {
        self.members.get(id as usize)?.core.as_ref()
    }

    pub fn cores(&self) -> impl Iterator<Item = &Core> {
        self.members.iter().filter_map(|m| m.core.as_ref())
    }

    pub fn running(&self) -> impl Iterator<Item = MemberId> + '_ {
        (0..self.members.len() as MemberId).filter(|i| self.members[*i as usize].core.is_some())
    }

    /// How far ahead of the clock the running members' CPUs are booked, on average, µs: how far
    /// behind the cluster has fallen.
    pub fn mean_lag_us(&self) -> u64 {
        if self.cpu.shared {
            return self.shared_until.saturating_sub(self.now);
        }
        let (sum, running) = self
            .members
            .iter()
            .filter(|m| m.core.is_some())
            .fold((0u64, 0u64), |(s, k), m| {
                (s + m.busy_until.saturating_sub(self.now), k + 1)
            });
        sum / running.max(1)
    }

    /// CPU µs each member has been busy since the start, by id.
    pub fn busy_us(&self) -> Vec<f64> {
        self.members.iter().map(|m| m.busy_us).collect()
    }

    pub fn rumors(&self) -> &BTreeMap<(MemberId, u64), Track> {
        &self.rumors
    }

    /// Changes the network from now on (a partition that starts relative to an event).
    pub fn set_net(&mut self, net: NetModel) {
        self.net = net;
    }

    /// Times the first suspicion of `id` by any member from now on.
    pub fn watch(&mut self, id: MemberId) {
        self.watch = Some((id, None));
    }

    /// When the watched member was first suspected (or declared dead), µs.
    pub fn first_suspected_us(&self) -> Option<u64> {
        self.watch.and_then(|(_, t)| t)
    }

    /// Publishes a rumor from `id`; `None` if it is not running or refuses.
    pub fn publish(&mut self, id: MemberId, payload: Bytes) -> Option<u64> {
        let now = self.now_ms();
        let seq = self.members[id as usize]
            .core
            .as_mut()?
            .publish(now, payload)
            .ok()?;
        self.rumors.insert(
            (id, seq),
            Track {
                published_us: self.now,
                delivered: 0,
                last_us: self.now,
            },
        );
        self.drain(id);
        Some(seq)
    }

    /// Stops member `id` without a word, as SIGKILL would: its queue and CPU are lost with it.
    pub fn crash(&mut self, id: MemberId) {
        let m = &mut self.members[id as usize];
        m.core = None;
        m.timer = None;
        m.backlog = 0;
        m.busy_until = self.now;
    }

    /// Boots a crashed member again, one epoch later, joining through the first live members.
    pub fn restart(&mut self, id: MemberId) -> anyhow::Result<()> {
        let epoch = self.members[id as usize].epoch + 1;
        let seeds: Vec<MemberId> = self.running().take(JOIN_SEEDS).collect();
        let mut core = self.boot(id, epoch)?;
        core.join(self.now_ms(), &seeds);
        let m = &mut self.members[id as usize];
        m.core = Some(core);
        m.epoch = epoch;
        self.drain(id);
        Ok(())
    }

    fn push(&mut self, at: u64, kind: Kind) {
        self.events.push(at, kind);
    }

    /// Runs to `until` (µs) `step` µs at a time, stopping after the first step at which `stop`
    /// holds (or before any, if it already does): a driver's checks between steps.
    pub fn run_in_steps(&mut self, until: u64, step: u64, stop: impl Fn(&World) -> bool) {
        while self.now < until && !stop(self) {
            self.run_until((self.now + step).min(until));
        }
    }

    /// Runs every event up to and including `until` (µs), then sets the clock there.
    pub fn run_until(&mut self, until: u64) {
        while let Some((at, kind)) = self.events.pop_until(until) {
            self.now = self.now.max(at);
            match kind {
                Kind::Timer(id) => self.fire(id, at),
                Kind::Arrive {
                    from,
                    to,
                    bytes,
                    messages,
                } => self.arrive(from, to, bytes, messages),
                Kind::Process {
                    from,
                    to,
                    epoch,
                    messages,
                } => self.process(from, to, epoch, messages),
            }
        }
        self.now = self.now.max(until);
    }

    fn fire(&mut self, id: MemberId, at: u64) {
        let now = self.now_ms();
        let m = &mut self.members[id as usize];
        if m.timer != Some(at) {
            return; // refiled since
        }
        // Timers run on the member's CPU too: behind the work already booked on it, as a node's
        // gossip round waits for its busy core thread (an overloaded node gossips less often).
        let free = if self.cpu.shared {
            self.shared_until
        } else {
            m.busy_until
        };
        if free > self.now {
            m.timer = Some(free);
            self.push(free, Kind::Timer(id));
            return;
        }
        m.timer = None;
        if let Some(core) = m.core.as_mut() {
            core.handle_timeout(now);
        }
        self.drain(id);
    }

    fn arrive(&mut self, from: MemberId, to: MemberId, bytes: usize, messages: Vec<Message>) {
        let cap = self.cpu.queue_cap;
        let m = &mut self.members[to as usize];
        let Some(core) = m.core.as_ref() else {
            self.counters.to_crashed += 1;
            return;
        };
        if m.backlog >= cap {
            self.counters.shed += 1;
            return;
        }
        let (mut rumors, mut new_rumors) = (0, 0);
        if self.cpu.costs.counts_rumors() {
            for msg in &messages {
                if let Message::Rumor(r) = msg {
                    rumors += 1;
                    new_rumors += usize::from(!core.knows_rumor(r.origin, r.seq));
                }
            }
        }
        let cost = self.cpu.costs.recv_us(&Incoming {
            bytes,
            rumors,
            new_rumors,
            backlog: m.backlog,
        });
        m.backlog += 1;
        self.counters.max_backlog = self.counters.max_backlog.max(m.backlog);
        let epoch = m.epoch;
        let done = self.book(to, cost);
        self.push(
            done,
            Kind::Process {
                from,
                to,
                epoch,
                messages,
            },
        );
    }

    fn process(&mut self, from: MemberId, to: MemberId, epoch: u64, messages: Vec<Message>) {
        let now = self.now_ms();
        let m = &mut self.members[to as usize];
        if m.epoch != epoch {
            return;
        }
        let Some(core) = m.core.as_mut() else { return };
        m.backlog = m.backlog.saturating_sub(1);
        core.handle_datagram(now, from, messages);
        self.drain(to);
    }

    /// Files member `id`'s next timer and carries out what its core asked for.
    fn drain(&mut self, id: MemberId) {
        let m = &mut self.members[id as usize];
        let Some(core) = m.core.as_mut() else { return };
        let next = core.poll_timeout().map(|t| t.0.saturating_mul(US_PER_MS));
        let mut actions = std::mem::take(&mut self.actions);
        actions.extend(core.drain_actions());
        if let Some(t) = next {
            // A timer due now runs after the events already queued for now.
            let t = t.max(self.now);
            if m.timer != Some(t) {
                m.timer = Some(t);
                self.push(t, Kind::Timer(id));
            }
        }
        for a in actions.drain(..) {
            match a {
                Action::Send { to, messages } => self.send(id, to, messages),
                Action::Deliver(r) => {
                    if let Some(t) = self.rumors.get_mut(&(r.origin, r.seq)) {
                        t.delivered += 1;
                        t.last_us = self.now;
                    }
                }
                Action::MemberChanged {
                    id: about, state, ..
                } => {
                    if let Some((w, first @ None)) = self.watch.as_mut() {
                        if *w == about && matches!(state, MemberState::Suspect | MemberState::Dead)
                        {
                            *first = Some(self.now);
                        }
                    }
                }
                // No simulated member equivocates (the simulator runs no adversaries).
                Action::Excluded(_) => self.counters.excluded += 1,
            }
        }
    }

    /// Books `cost_us` of one core's work for member `id` on its CPU (its own slice, or the
    /// shared pool) and returns when the work is done. The member's busy time counts the work
    /// at its budget's speed, so busy time over wall time is its use of its budget either way.
    fn book(&mut self, id: MemberId, cost_us: f64) -> u64 {
        let n = self.members.len() as f64;
        let m = &mut self.members[id as usize];
        let own = self.cpu.budget - self.cpu.background;
        let (line, speed) = if self.cpu.shared {
            (&mut self.shared_until, own * n)
        } else {
            (&mut m.busy_until, own)
        };
        let start = (*line).max(self.now);
        // Whole microseconds, at least one: the clock is integer and work is never free.
        let done = start + ((cost_us / speed).ceil() as u64).max(1);
        *line = done;
        m.busy_us += cost_us / self.cpu.budget;
        done
    }

    /// Seals (CPU), then puts the datagram on the wire.
    fn send(&mut self, from: MemberId, to: MemberId, messages: Vec<Message>) {
        let bytes = match self.packet.as_mut() {
            Some(p) => sealed_len(self.cfg.mtu, p, &messages),
            None => self.cfg.mtu,
        };
        let departs = self.book(from, self.cpu.costs.send_us(bytes));
        self.counters.sent += 1;
        self.counters.bytes += bytes as u64;
        if to as usize >= self.members.len() {
            self.counters.lost += 1;
            return;
        }
        if let Some(p) = self.net.partition {
            let cut = (from < p.side) != (to < p.side);
            if cut && (p.from_us..p.until_us).contains(&departs) {
                self.counters.partitioned += 1;
                return;
            }
        }
        if self.net.loss > 0.0 && self.rng.gen_bool(self.net.loss) {
            self.counters.lost += 1;
            return;
        }
        let (lo, hi) = self.net.latency_us;
        let at = departs + self.rng.gen_range(lo..=hi.max(lo));
        self.push(
            at,
            Kind::Arrive {
                from,
                to,
                bytes,
                messages,
            },
        );
    }
}

/// The size of `messages` once sealed: what the core packed them under, measured in `packet`.
fn sealed_len(mtu: usize, packet: &mut Packet, messages: &[Message]) -> usize {
    packet.clear();
    for m in messages {
        // The core packed these under the same MTU: they fit.
        let _ = packet.push(m);
    }
    mtu - packet.remaining()
}
