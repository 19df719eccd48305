//! The protocol core: one deterministic state machine per member, fed `(now, input)` and drained
//! of actions, in the sans-IO style of quinn-proto and foca. SWIM failure detection with
//! Lifeguard's refinements, push gossip with piggybacking, push-pull sync, and rumors.
//! References: SWIM (Das, Gupta, Motivala 2002); Lifeguard (Dadgar, Phillips, Currey 2018);
//! hashicorp/memberlist (state.go, net.go) for the defaults and message flows.
//!
//! Trust contract: the driver hands the core only datagrams that passed the suite's hop
//! authentication, anti-replay, and, for origin-signing suites, verification of every rumor's
//! origin signature (the verify pool does this before the core sees them). `from` is the
//! authenticated sender. The core still treats every message field as hostile: unknown ids,
//! absurd incarnations or sequence numbers, statements about itself are counted and never panic.
//!
//! Concurrency: a `Core` is single-owner (`&mut self` everywhere); a driver runs one per member,
//! on one thread. All randomness comes from the seeded RNG in `Boot`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use codec::message::MAX_RUMOR_PAYLOAD;
use codec::{
    Certificate, EquivocationProof, MemberId, MemberState, Message, Rumor, SecretKey, Suite, Update,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::authority::{self, Authority, Check};
use super::broadcast::{Broadcasts, Key, Limits};
use super::config::{Config, ConfigError};
use super::health::Awareness;
use super::membership::{is_live, supersedes, Membership};
use super::pack::{certificate_fits, fits_alone, Datagrams};
use super::probe::{Probe, Prober, Relay, NACK_FRACTION};
use super::roster::Roster;
use super::rumors::{OriginCap, RumorLog};
use super::stats::Stats;
use super::suspicion::Suspicions;
use super::time::{ms, Millis};

/// Refutations a boot can make before its incarnations reach the next boot's starting one.
pub(crate) const REFUTATIONS_PER_BOOT: u64 = 1 << 16;
/// Rumors a boot can publish before its sequence numbers reach the next boot's first one.
const RUMORS_PER_BOOT: u64 = 1 << 32;

/// Whether `number` (an incarnation with `per_boot` = [`REFUTATIONS_PER_BOOT`], a rumor
/// sequence number with [`RUMORS_PER_BOOT`]) belongs to an epoch no boot can have reached by
/// `now` ([`codec::epoch::reachable`]; epochs are unix seconds on the real driver's clock,
/// and count boots on a virtual clock that starts at 0). Such a statement is refused:
/// at `u64::MAX` its subject could never refute it, not even after a restart, and a rumor
/// there would mark all its origin's later ones as seen.
fn implausible(now: Millis, number: u64, per_boot: u64) -> bool {
    !codec::epoch::reachable(number / per_boot, now.0)
}

/// Past this many remembered sync answers, the expired ones are forgotten: the map stays as
/// small as the number of members that asked within one probe interval.
const SYNC_ANSWERS_TRACKED: usize = 64;

/// Who this core is, for this boot.
#[derive(Clone, Debug)]
pub struct Boot {
    pub id: MemberId,
    /// Starting incarnation: above any incarnation of an earlier boot (including its
    /// refutations), so this boot's Alive overrides what the cluster remembers of the last one.
    pub incarnation: u64,
    /// First rumor sequence number: above any of an earlier boot, or receivers drop new rumors as
    /// duplicates.
    pub first_rumor_seq: u64,
    /// Signs this member's rumors on suites that sign origins.
    pub signer: Option<Arc<SecretKey>>,
    /// The address other members should reach us at, carried in our Alive updates.
    pub advertise: Option<SocketAddr>,
    /// Seed of every random choice the core makes.
    pub rng_seed: u64,
}

impl Boot {
    /// Incarnation and rumor sequence derived from the persisted boot epoch (codec `EpochStore`,
    /// strictly increasing per boot), leaving each boot 2^16 refutations and 2^32 rumors.
    pub fn from_epoch(id: MemberId, epoch: u64, rng_seed: u64) -> Boot {
        Boot {
            id,
            incarnation: epoch.saturating_mul(REFUTATIONS_PER_BOOT),
            first_rumor_seq: epoch.saturating_mul(RUMORS_PER_BOOT),
            signer: None,
            advertise: None,
            rng_seed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("member {0} is not on the roster")]
    NotOnRoster(MemberId),
    #[error("suite {0} signs rumors end to end: this member needs its signing key")]
    MissingSigner(Suite),
    #[error("rumor payload of {len} bytes does not fit one datagram (at most {max} bytes)")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("this member has left the cluster")]
    Left,
}

/// An unsigned membership statement: `origin` says `subject` is in `state` at `incarnation`.
/// (Signed statements arrive with the authority layer, issue 6.)
fn statement(
    subject: MemberId,
    incarnation: u64,
    state: MemberState,
    origin: MemberId,
    addr: Option<SocketAddr>,
) -> Update {
    Update {
        subject,
        incarnation,
        state,
        origin,
        addr,
        signature: None,
    }
}

/// What fills a datagram's free space after its own messages.
enum Fill {
    Nothing,
    /// Broadcasts ride along a probe or an answer, unless the configuration turns that off.
    Piggyback,
    /// A gossip round: the datagram exists to carry broadcasts.
    Gossip,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Seal `messages` as one datagram to `to` (address: [`Core::addr_of`] or the driver's own).
    Send {
        to: MemberId,
        messages: Vec<Message>,
    },
    /// A rumor heard for the first time: hand it to the application.
    Deliver(Rumor),
    /// A verified equivocation proof convicted this member: its rumors are dropped and it no
    /// longer counts in any quorum.
    Excluded(MemberId),
    /// Another member's state changed in this core's view.
    MemberChanged {
        id: MemberId,
        state: MemberState,
        incarnation: u64,
        addr: Option<SocketAddr>,
    },
}

pub struct Core {
    cfg: Config,
    roster: Arc<Roster>,
    id: MemberId,
    me: u32,
    incarnation: u64,
    signer: Option<Arc<SecretKey>>,
    advertise: Option<SocketAddr>,
    rng: StdRng,
    members: Membership,
    /// Addresses heard in Alive updates that the roster does not list (empty when it does).
    learned_addrs: BTreeMap<u32, SocketAddr>,
    suspicions: Suspicions,
    prober: Prober,
    awareness: Awareness,
    broadcasts: Broadcasts,
    rumors: RumorLog,
    next_rumor_seq: u64,
    seeds: Vec<MemberId>,
    next_probe: Millis,
    next_gossip: Millis,
    next_push_pull: Millis,
    /// Join retries continue until a sync reply arrives: UDP may lose the first exchange, and
    /// gossip alone would not repair a joiner's view until the next push-pull.
    next_join: Option<Millis>,
    /// When each member's sync request was last answered: one answer per probe interval, so a
    /// member cannot turn small requests into full-state replies at will.
    sync_answered: BTreeMap<u32, Millis>,
    /// Set by `leave`: when the core stops.
    leaving: Option<Millis>,
    stopped: bool,
    actions: VecDeque<Action>,
    stats: Stats,
    /// The quorum authority layer, when configured.
    auth: Option<Authority>,
    origin_cap: Option<OriginCap>,
}

impl Core {
    pub fn new(
        cfg: Config,
        roster: Arc<Roster>,
        boot: Boot,
        now: Millis,
    ) -> Result<Core, CoreError> {
        cfg.validate()?;
        let me = roster
            .index_of(boot.id)
            .ok_or(CoreError::NotOnRoster(boot.id))?;
        if cfg.suite.signs_origin() && boot.signer.is_none() {
            return Err(CoreError::MissingSigner(cfg.suite));
        }
        let auth = match cfg.authority {
            Some(t) => {
                let q = t.resolve(roster.len())?;
                if !certificate_fits(&cfg, q.quorum) {
                    return Err(ConfigError::Authority(format!(
                        "a death certificate of quorum {} signatures does not fit one {}-byte {} datagram, so it could never be sent: raise --mtu or lower --tolerate or --quorum",
                        q.quorum, cfg.mtu, cfg.suite
                    ))
                    .into());
                }
                Some(Authority::new(q, cfg.cluster_tag))
            }
            None => None,
        };
        let origin_cap = cfg.origin_rumor_cap.map(OriginCap::new);
        let mut rng = StdRng::seed_from_u64(boot.rng_seed);
        // Random phases keep members from probing and gossiping in lockstep.
        let mut phase = |d: std::time::Duration| now + d.mul_f64(rng.gen::<f64>());
        let (next_probe, next_gossip, next_push_pull) = (
            phase(cfg.probe_interval),
            phase(cfg.gossip_interval),
            phase(cfg.push_pull_interval),
        );
        let mut core = Core {
            members: Membership::new(roster.len()),
            broadcasts: Broadcasts::new(cfg.broadcast_queue_max),
            awareness: Awareness::new(
                cfg.max_awareness,
                cfg.authority.map_or(0, |t| t.f),
                cfg.suspicion_max(roster.len()),
            ),
            cfg,
            roster,
            id: boot.id,
            me,
            incarnation: boot.incarnation,
            signer: boot.signer,
            advertise: boot.advertise,
            rng,
            learned_addrs: BTreeMap::new(),
            suspicions: Suspicions::default(),
            prober: Prober::default(),
            rumors: RumorLog::default(),
            next_rumor_seq: boot.first_rumor_seq,
            seeds: Vec::new(),
            next_probe,
            next_gossip,
            next_push_pull,
            next_join: None,
            sync_answered: BTreeMap::new(),
            leaving: None,
            stopped: false,
            actions: VecDeque::new(),
            stats: Stats::default(),
            auth,
            origin_cap,
        };
        if core.cfg.aligned_gossip {
            core.next_gossip = core.next_gossip_round(now);
        }
        core.announce(MemberState::Alive);
        Ok(core)
    }

    // ---- inputs ----

    /// Joins through `seeds`: a push-pull sync with each, repeated every probe interval until
    /// some member answers one.
    pub fn join(&mut self, now: Millis, seeds: &[MemberId]) {
        self.seeds = seeds
            .iter()
            .copied()
            .filter(|s| *s != self.id && self.roster.index_of(*s).is_some())
            .collect();
        self.join_round(now);
    }

    /// Publishes an application rumor stamped with `now` (the driver's clock: unix milliseconds
    /// in the real node); returns its sequence number.
    pub fn publish(&mut self, now: Millis, payload: Bytes) -> Result<u64, CoreError> {
        if self.leaving.is_some() {
            return Err(CoreError::Left);
        }
        let len = payload.len();
        let mut rumor = Rumor {
            origin: self.id,
            seq: self.next_rumor_seq,
            timestamp_ms: now.0,
            payload,
            signature: None,
        };
        if self.cfg.suite.signs_origin() {
            if let Some(sk) = &self.signer {
                rumor.signature = Some(sk.sign(&rumor.signing_input(self.cfg.cluster_tag)));
            }
        }
        let message = Message::Rumor(rumor);
        if len > MAX_RUMOR_PAYLOAD || !fits_alone(&self.cfg, &message) {
            return Err(CoreError::PayloadTooLarge {
                len,
                max: MAX_RUMOR_PAYLOAD,
            });
        }
        let seq = self.next_rumor_seq;
        self.next_rumor_seq = seq.saturating_add(1);
        self.enqueue(Key::Rumor(self.id, seq), message);
        self.stats.rumors_published += 1;
        Ok(seq)
    }

    /// Leaves gracefully: gossips Left at a higher incarnation for the broadcast's retransmit
    /// rounds, then stops (see [`Core::has_stopped`]).
    pub fn leave(&mut self, now: Millis) {
        if self.leaving.is_some() {
            return;
        }
        let n = self.cluster_size();
        self.incarnation = self.incarnation.saturating_add(1);
        let left = self.announce(MemberState::Left);
        // Tell a few members at once rather than waiting for the next gossip round.
        for t in self.members.sample(&mut self.rng, self.cfg.fanout, &[]) {
            let to = self.roster.id_at(t);
            self.send(to, vec![left.clone()], Fill::Nothing);
        }
        self.prober.current = None;
        self.prober.relays.clear();
        self.leaving = Some(now + self.cfg.gossip_interval * self.cfg.retransmit_limit(n));
    }

    /// One datagram's messages from `from` (authenticated, see the module's trust contract).
    pub fn handle_datagram(
        &mut self,
        now: Millis,
        from: MemberId,
        messages: impl IntoIterator<Item = Message>,
    ) {
        if self.stopped {
            return;
        }
        self.stats.datagrams_in += 1;
        let Some(from_idx) = self.roster.index_of(from).filter(|i| *i != self.me) else {
            self.stats.foreign_sender += 1;
            return;
        };
        let mut reply = Vec::new();
        let mut sync_requested = false;
        let refutations = self.stats.refutations;
        for m in messages {
            match m {
                Message::Ping { seq } => reply.push(Message::Ack { seq }),
                Message::Ack { seq } => self.on_ack(from, seq),
                Message::PingReq { seq, target } => {
                    self.on_ping_req(now, from, seq, target, &mut reply)
                }
                Message::IndirectAck { seq, target } => self.on_indirect_ack(seq, target),
                Message::Nack { seq, target } => self.on_nack(seq, target),
                Message::Update(u) => self.apply(now, u),
                Message::Rumor(r) => self.on_rumor(now, from, r),
                Message::SyncRequest => sync_requested = true,
                // The updates after the marker are applied like any others (and, as memberlist
                // does, re-gossiped when new to us: the redundancy that lets members that missed
                // a join's few early broadcasts still hear of it). A reply completes a join.
                Message::SyncReply => self.next_join = None,
                Message::Certificate(c) => self.on_certificate(now, c),
                Message::Equivocation(p) => self.on_proof(p),
            }
        }
        // A refutation goes straight back to whoever told us we were suspected, piggybacked
        // first (it is the newest, least-sent broadcast), as well as out by gossip.
        if !reply.is_empty() || self.stats.refutations > refutations {
            self.send(from, reply, Fill::Piggyback);
        }
        if sync_requested {
            self.answer_sync(now, from, from_idx);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.stopped {
            return;
        }
        if let Some(end) = self.leaving {
            if now >= end {
                self.stopped = true;
                return;
            }
        }
        self.expire_relays(now);
        self.advance_probe(now);
        if self.leaving.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
        for (idx, incarnation) in self.suspicions.expire(now) {
            let e = *self.members.get(idx);
            if e.state == Some(MemberState::Suspect) && e.incarnation == incarnation {
                let subject = self.roster.id_at(idx);
                if self.auth.is_some() {
                    self.witness_verdict(now, idx, subject, incarnation);
                } else {
                    self.stats.deaths_declared += 1;
                    let dead = statement(subject, incarnation, MemberState::Dead, self.id, None);
                    self.apply(now, dead);
                }
            }
        }
        self.ping_suspects(now);
        if now >= self.next_gossip {
            self.next_gossip = self.next_gossip_round(now);
            self.gossip();
        }
        if self.leaving.is_none() && now >= self.next_push_pull {
            self.next_push_pull = now + self.cfg.push_pull_period(self.cluster_size());
            if let Some(&t) = self.members.sample(&mut self.rng, 1, &[]).first() {
                self.send_sync(self.roster.id_at(t), Message::SyncRequest);
            }
            self.reconnect();
        }
        if self.next_join.is_some_and(|t| now >= t) {
            self.join_round(now);
        }
    }

    /// When [`Core::handle_timeout`] must next be called; `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.stopped {
            return None;
        }
        if let Some(end) = self.leaving {
            return Some(end.min(self.next_gossip));
        }
        [
            Some(self.next_probe),
            Some(self.next_gossip),
            Some(self.next_push_pull),
            self.next_join,
        ]
        .into_iter()
        .chain([
            self.prober.next_deadline(),
            self.suspicions.next_deadline(),
            self.auth.as_ref().and_then(Authority::next_check),
        ])
        .flatten()
        .min()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn drain_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.actions.drain(..)
    }

    // ---- queries ----

    pub fn id(&self) -> MemberId {
        self.id
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Lifeguard local health score (0 = healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Whether a rumor is already known here (ours, or delivered before): the driver skips
    /// verifying the origin signature of rumors the core would drop as duplicates anyway.
    pub fn knows_rumor(&self, origin: MemberId, seq: u64) -> bool {
        origin == self.id || self.rumors.seen(origin, seq)
    }

    /// Whether the authority layer excluded `id` as a proven equivocator.
    pub fn is_excluded(&self, id: MemberId) -> bool {
        self.auth.as_ref().is_some_and(|a| a.is_excluded(id))
    }

    /// Whether `m` could change anything here, so its signatures must be verified first: a
    /// driver skips the check for duplicates, stale statements, convicted members and rumors
    /// over their origin's cap, which the core drops anyway (verification is paid once per
    /// unique statement, and never for what a flood brings past the cap).
    pub fn is_news(&self, now: Millis, m: &Message) -> bool {
        let excluded = |id| self.is_excluded(id);
        match m {
            Message::Rumor(r) if implausible(now, r.seq, RUMORS_PER_BOOT) => false,
            Message::Update(u) if implausible(now, u.incarnation, REFUTATIONS_PER_BOOT) => false,
            Message::Certificate(c) if implausible(now, c.incarnation, REFUTATIONS_PER_BOOT) => {
                false
            }
            Message::Rumor(r) => {
                let conflict = self
                    .auth
                    .as_ref()
                    .is_some_and(|a| a.conflicting_rumor(r).is_some());
                let capped = self
                    .origin_cap
                    .as_ref()
                    .is_some_and(|c| c.exhausted(r.origin, self.rumor_window(now)));
                !excluded(r.origin) && (conflict || (!capped && !self.knows_rumor(r.origin, r.seq)))
            }
            Message::Update(u) => {
                let (Some(auth), Some(idx)) = (&self.auth, self.roster.index_of(u.subject)) else {
                    return true;
                };
                let cur = self.members.get(idx);
                let stale = cur.incarnation > u.incarnation
                    || (u.state == MemberState::Dead && cur.state == Some(MemberState::Dead));
                !excluded(u.origin) && !stale && !auth.knows(idx, u)
            }
            Message::Certificate(c) => self.roster.index_of(c.subject).is_some_and(|idx| {
                supersedes(self.members.get(idx), c.incarnation, MemberState::Dead)
            }),
            Message::Equivocation(p) => authority::offender(p).is_ok_and(|id| !excluded(id)),
            _ => true,
        }
    }

    pub fn has_stopped(&self) -> bool {
        self.stopped
    }

    /// State and incarnation of `id` in this core's view (`None`: never heard of, or not on the
    /// roster). This member itself is included.
    pub fn member(&self, id: MemberId) -> Option<(MemberState, u64)> {
        let e = self.members.get(self.roster.index_of(id)?);
        e.state.map(|s| (s, e.incarnation))
    }

    /// Every member this core knows of, in roster order.
    pub fn members(&self) -> impl Iterator<Item = (MemberId, MemberState, u64)> + '_ {
        self.members
            .entries()
            .filter_map(|(i, e)| e.state.map(|s| (self.roster.id_at(i), s, e.incarnation)))
    }

    /// Members alive or suspect, this one included: the n of the SWIM and Lifeguard formulas.
    pub fn cluster_size(&self) -> usize {
        self.members.live().len() + 1
    }

    /// Where to send to `id`: the address it advertised, else the roster's.
    pub fn addr_of(&self, id: MemberId) -> Option<SocketAddr> {
        let idx = self.roster.index_of(id)?;
        self.learned_addrs
            .get(&idx)
            .copied()
            .or_else(|| self.roster.addr(id))
    }

    /// Broadcasts waiting for (re)transmission.
    pub fn broadcast_backlog(&self) -> usize {
        self.broadcasts.len()
    }

    /// Members under suspicion right now.
    pub fn suspects(&self) -> usize {
        self.suspicions.len()
    }

    // ---- probing ----

    fn start_probe(&mut self, now: Millis) {
        let period = self.awareness.scale(self.cfg.probe_interval);
        self.next_probe = now + period;
        let Some(target) = self.prober.next_target(&self.members, &mut self.rng) else {
            return;
        };
        let seq = self.prober.next_seq();
        self.prober.current = Some(Probe {
            target,
            seq,
            indirect_at: now + self.awareness.scale(self.cfg.probe_timeout),
            indirect_sent: false,
            end: now + period,
            acked: false,
            expected_nacks: 0,
            nacks: 0,
        });
        self.stats.probes_sent += 1;
        self.send(
            self.roster.id_at(target),
            vec![Message::Ping { seq }],
            Fill::Piggyback,
        );
    }

    fn advance_probe(&mut self, now: Millis) {
        let Some(p) = self.prober.current.as_mut() else {
            return;
        };
        if p.acked {
            self.prober.current = None;
            return;
        }
        let (target, seq) = (p.target, p.seq);
        let target_id = self.roster.id_at(target);
        if !p.indirect_sent && now >= p.indirect_at {
            p.indirect_sent = true;
            let relays = self
                .members
                .sample(&mut self.rng, self.cfg.indirect_probes, &[target]);
            p.expected_nacks = relays.len() as u32;
            for r in relays {
                self.stats.indirect_probes_sent += 1;
                self.send(
                    self.roster.id_at(r),
                    vec![Message::PingReq {
                        seq,
                        target: target_id,
                    }],
                    Fill::Piggyback,
                );
            }
        }
        let Some(p) = self.prober.current.as_ref() else {
            return;
        };
        if now < p.end {
            return;
        }
        // Lifeguard: with relays to vouch for our own health, only their missing nacks count
        // against it; without, the failed probe itself does.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks)
        } else {
            1
        };
        self.prober.current = None;
        self.stats.probe_failures += 1;
        self.awareness.apply(i64::from(delta));
        let e = *self.members.get(target);
        if is_live(e.state) {
            self.suspect(now, target, e.incarnation);
        }
    }

    /// Marks the probe in progress answered if `(seq, target)` is its; returns whether it was.
    fn probe_answered(&mut self, seq: u32, target: MemberId) -> bool {
        let Some(p) = self.prober.current.as_mut() else {
            return false;
        };
        if p.seq != seq || p.acked || self.roster.id_at(p.target) != target {
            return false;
        }
        p.acked = true;
        self.stats.acks_received += 1;
        // Lifeguard: a probe answered in time is evidence of our own health.
        self.awareness.apply(-1);
        true
    }

    fn on_ack(&mut self, from: MemberId, seq: u32) {
        if self.probe_answered(seq, from) {
            return;
        }
        let relay = self
            .prober
            .relays
            .iter()
            .position(|r| r.seq == seq && r.target == from);
        let Some(pos) = relay else {
            if !self.check_answered(from, seq) {
                self.stats.messages_ignored += 1;
            }
            return;
        };
        let r = self.prober.relays.swap_remove(pos);
        let answer = Message::IndirectAck {
            seq: r.requester_seq,
            target: r.target,
        };
        self.send(r.requester, vec![answer], Fill::Piggyback);
    }

    fn on_indirect_ack(&mut self, seq: u32, target: MemberId) {
        if !self.probe_answered(seq, target) {
            self.stats.messages_ignored += 1;
        }
    }

    fn on_nack(&mut self, seq: u32, target: MemberId) {
        match self.prober.current.as_mut() {
            Some(p)
                if p.seq == seq
                    && p.nacks < p.expected_nacks
                    && self.roster.id_at(p.target) == target =>
            {
                p.nacks += 1;
                self.stats.nacks_received += 1;
            }
            _ => self.stats.messages_ignored += 1,
        }
    }

    fn on_ping_req(
        &mut self,
        now: Millis,
        from: MemberId,
        seq: u32,
        target: MemberId,
        reply: &mut Vec<Message>,
    ) {
        if target == self.id {
            reply.push(Message::IndirectAck { seq, target });
            return;
        }
        if target == from || self.roster.index_of(target).is_none() || self.leaving.is_some() {
            self.stats.messages_ignored += 1;
            return;
        }
        if self.prober.relays.len() >= self.cfg.max_relays {
            // Still tell the requester we heard it: its own path is fine (Lifeguard).
            self.stats.relays_refused += 1;
            reply.push(Message::Nack { seq, target });
            return;
        }
        let my_seq = self.prober.next_seq();
        let nack_at = now + self.cfg.probe_timeout.mul_f64(NACK_FRACTION);
        self.prober.relays.push(Relay {
            seq: my_seq,
            requester: from,
            requester_seq: seq,
            target,
            nack_at,
        });
        self.stats.relays += 1;
        self.send(target, vec![Message::Ping { seq: my_seq }], Fill::Piggyback);
    }

    fn expire_relays(&mut self, now: Millis) {
        while let Some(pos) = self.prober.relays.iter().position(|r| r.nack_at <= now) {
            let r = self.prober.relays.remove(pos);
            self.send(
                r.requester,
                vec![Message::Nack {
                    seq: r.requester_seq,
                    target: r.target,
                }],
                Fill::Nothing,
            );
        }
    }

    /// Raises (or, if others already did, seconds) the suspicion of `idx` and tells the suspect
    /// directly so it can refute at once (Lifeguard).
    fn suspect(&mut self, now: Millis, idx: u32, incarnation: u64) {
        let subject = self.roster.id_at(idx);
        let update = self.signed(statement(
            subject,
            incarnation,
            MemberState::Suspect,
            self.id,
            None,
        ));
        self.stats.suspicions_raised += 1;
        self.apply(now, update.clone());
        self.send(subject, vec![Message::Update(update)], Fill::Nothing);
    }

    // ---- membership updates ----

    /// Applies a membership statement; a change (or a new confirmation) is queued for gossip.
    fn apply(&mut self, now: Millis, u: Update) {
        let Some(idx) = self.roster.index_of(u.subject) else {
            self.stats.updates_ignored += 1;
            return;
        };
        if implausible(now, u.incarnation, REFUTATIONS_PER_BOOT) {
            self.stats.implausible += 1;
            return;
        }
        if let Some(auth) = &self.auth {
            if u.signature.is_none() || auth.is_excluded(u.origin) {
                self.stats.statements_refused += 1;
                return;
            }
        }
        if idx == self.me {
            let by = self.roster.index_of(u.origin).map(|_| u.origin);
            self.about_me(now, u, by.as_slice());
            return;
        }
        // Alive and Left are only the subject's to state, Suspect and Dead only others'.
        let self_stated = u.origin == u.subject;
        let plausible = matches!(u.state, MemberState::Alive | MemberState::Left) == self_stated;
        if !plausible || self.roster.index_of(u.origin).is_none() {
            self.stats.updates_ignored += 1;
            return;
        }
        if self.auth.is_some() && !self.authority_admits(now, idx, &u) {
            return;
        }
        let cur = *self.members.get(idx);
        if u.state == MemberState::Suspect
            && cur.state == Some(MemberState::Suspect)
            && u.incarnation == cur.incarnation
        {
            let confirmed = u.origin != self.id
                && self
                    .suspicions
                    .confirm(&self.cfg, idx, u.incarnation, u.origin);
            if confirmed {
                self.stats.suspicion_confirmations += 1;
            } else if u.origin != self.id {
                self.stats.updates_ignored += 1;
                return;
            }
            // A new confirmation (or our own, for others to count) is worth spreading.
            self.enqueue(Key::Member(u.subject), Message::Update(u));
            return;
        }
        if !supersedes(&cur, u.incarnation, u.state) {
            self.stats.updates_ignored += 1;
            return;
        }
        let n = self.cluster_size();
        if self.members.set(idx, self.me, u.incarnation, u.state) {
            self.prober.insert(idx, &mut self.rng);
        }
        if u.state == MemberState::Suspect {
            let accuser = (u.origin != self.id).then_some(u.origin);
            self.suspicions
                .start(&self.cfg, now, idx, u.incarnation, n, accuser);
            self.start_check(now, idx, &u);
        } else {
            self.suspicions.remove(idx);
            if let Some(auth) = self.auth.as_mut() {
                auth.checks.remove(&idx);
            }
        }
        if let (MemberState::Alive, Some(a)) = (u.state, u.addr) {
            if self.roster.addr(u.subject) != Some(a) {
                self.learned_addrs.insert(idx, a);
            }
        }
        self.stats.updates_applied += 1;
        self.actions.push_back(Action::MemberChanged {
            id: u.subject,
            state: u.state,
            incarnation: u.incarnation,
            addr: self.addr_of(u.subject),
        });
        self.enqueue(Key::Member(u.subject), Message::Update(u));
    }

    /// SWIM refutation: a statement that we are suspect, dead or gone (or alive at an incarnation
    /// we never had) is answered with Alive at a higher incarnation. `accusers` are the admitted
    /// members behind it, for the health score.
    fn about_me(&mut self, now: Millis, u: Update, accusers: &[MemberId]) {
        let contradicts = match u.state {
            MemberState::Alive => u.incarnation > self.incarnation,
            _ => u.incarnation >= self.incarnation,
        };
        let next = u.incarnation.saturating_add(1);
        if self.leaving.is_some() || !contradicts || next <= u.incarnation {
            self.stats.updates_ignored += 1;
            return;
        }
        if u.state != MemberState::Alive {
            self.awareness.accused(now, accusers);
        }
        self.incarnation = next;
        self.stats.refutations += 1;
        self.announce(MemberState::Alive);
    }

    /// Records our own state at the current incarnation and queues it for gossip.
    fn announce(&mut self, state: MemberState) -> Message {
        self.members.set(self.me, self.me, self.incarnation, state);
        let addr = if state == MemberState::Alive {
            self.advertise
        } else {
            None
        };
        let u = self.signed(statement(self.id, self.incarnation, state, self.id, addr));
        if let Some(auth) = self.auth.as_mut() {
            auth.held_mut(self.me).own = Some(u.clone());
        }
        let m = Message::Update(u);
        self.enqueue(Key::Member(self.id), m.clone());
        m
    }

    // ---- authority ----

    /// Signs a statement of ours when the authority layer needs every statement signed.
    fn signed(&self, mut u: Update) -> Update {
        if let (Some(_), Some(sk)) = (&self.auth, &self.signer) {
            u.signature = Some(sk.sign(&u.signing_input(self.cfg.cluster_tag)));
        }
        u
    }

    /// The authority layer's rules for a signed statement about another member; returns whether
    /// the ordinary soft-view rules apply next. A Dead statement is a witness's vote: it counts
    /// towards a certificate and changes nothing by itself.
    fn authority_admits(&mut self, now: Millis, idx: u32, u: &Update) -> bool {
        let Some(auth) = self.auth.as_mut() else {
            return true;
        };
        if u.origin == u.subject {
            if let Some(p) = auth.conflicting_own(idx, u) {
                self.convict(u.origin, p);
                return false;
            }
            let held = auth.held_mut(idx);
            if held
                .own
                .as_ref()
                .is_none_or(|o| o.incarnation < u.incarnation)
            {
                held.own = Some(u.clone());
            }
            return true;
        }
        // Accusations count only at incarnations the accused itself signed.
        if auth
            .signed_incarnation(idx)
            .is_none_or(|i| u.incarnation > i)
        {
            self.stats.accusations_refused += 1;
            return false;
        }
        if u.state == MemberState::Suspect {
            if supersedes(self.members.get(idx), u.incarnation, u.state) {
                auth.held_mut(idx).accusation = Some(u.clone());
            }
            return true;
        }
        if !supersedes(self.members.get(idx), u.incarnation, u.state) {
            // Already certified (or refuted): a late vote settles nothing.
            self.stats.updates_ignored += 1;
            return false;
        }
        if !auth.is_witness(&self.roster, u.origin, u.subject, u.incarnation) {
            self.stats.votes_refused += 1;
            return false;
        }
        let (new, certificate) = auth.vote(u.clone());
        if new {
            self.stats.votes_received += 1;
            self.enqueue(Key::Vote(u.subject, u.origin), Message::Update(u.clone()));
        }
        if let Some(c) = certificate {
            self.stats.certificates_formed += 1;
            self.commit(now, c);
        }
        false
    }

    /// A witness of a new suspect pings it itself: its vote rests on its own evidence, not on
    /// the accuser's word.
    fn start_check(&mut self, now: Millis, idx: u32, u: &Update) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        if !auth.is_witness(&self.roster, self.id, u.subject, u.incarnation) {
            return;
        }
        let seq = self.prober.next_seq();
        // The vote waits Lifeguard's minimum suspicion: what a fully confirmed suspicion waits.
        // Our own unanswered pings over that span are the confirmation; the soft view's timer
        // (which counts others' confirmations) does not hold the certificate back.
        let vote_at = now + self.cfg.suspicion_min(self.members.live().len() + 1);
        auth.checks.insert(
            idx,
            Check {
                incarnation: u.incarnation,
                seq,
                answered: false,
                confirmed: false,
                pinged: false,
                next_ping: now,
                vote_at,
                voted: false,
            },
        );
        self.ping_suspects(now);
    }

    /// Pings each unanswered suspect we witness, once per probe timeout. A ping unanswered for
    /// a whole timeout is our own evidence: we confirm the suspicion in our name, which counts as
    /// an independent confirmation everywhere (Lifeguard), so every witness's timer shrinks and
    /// a real crash is certified in about the minimum suspicion timeout.
    fn ping_suspects(&mut self, now: Millis) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        let (mut due, mut confirm, mut votes) = (Vec::new(), Vec::new(), Vec::new());
        for (idx, c) in auth.checks.iter_mut() {
            if !c.answered && !c.voted && c.vote_at <= now {
                c.voted = true;
                votes.push((*idx, c.incarnation));
            }
            if !c.answered && c.next_ping <= now {
                if c.pinged && !c.confirmed {
                    c.confirmed = true;
                    confirm.push((*idx, c.incarnation));
                }
                c.pinged = true;
                c.next_ping = now + self.cfg.probe_timeout;
                due.push((self.roster.id_at(*idx), c.seq));
            }
        }
        for (to, seq) in due {
            self.stats.witness_pings += 1;
            self.send(to, vec![Message::Ping { seq }], Fill::Nothing);
        }
        for (idx, incarnation) in confirm {
            let e = *self.members.get(idx);
            if e.state == Some(MemberState::Suspect) && e.incarnation == incarnation {
                self.stats.suspicions_raised += 1;
                let subject = self.roster.id_at(idx);
                let mine = self.signed(statement(
                    subject,
                    incarnation,
                    MemberState::Suspect,
                    self.id,
                    None,
                ));
                self.apply(now, mine);
            }
        }
        for (idx, incarnation) in votes {
            let e = *self.members.get(idx);
            if e.state == Some(MemberState::Suspect) && e.incarnation == incarnation {
                self.cast_vote(now, self.roster.id_at(idx), incarnation);
            }
        }
    }

    /// Marks a witness check answered if `(from, seq)` is its ping; returns whether it was.
    fn check_answered(&mut self, from: MemberId, seq: u32) -> bool {
        let (Some(auth), Some(idx)) = (self.auth.as_mut(), self.roster.index_of(from)) else {
            return false;
        };
        match auth.checks.get_mut(&idx) {
            Some(c) if c.seq == seq => {
                c.answered = true;
                true
            }
            _ => false,
        }
    }

    /// A suspicion ran out: a witness whose own pings went unanswered signs its Dead vote;
    /// everyone else waits for a certificate (the member stays suspect in the soft view).
    fn witness_verdict(&mut self, now: Millis, idx: u32, subject: MemberId, incarnation: u64) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        let check = auth.checks.remove(&idx);
        if !auth.is_witness(&self.roster, self.id, subject, incarnation) {
            self.stats.suspicions_uncertified += 1;
            return;
        }
        match check.filter(|c| c.incarnation == incarnation) {
            Some(c) if c.answered => self.stats.votes_withheld += 1,
            Some(c) if c.voted => {}
            _ => self.cast_vote(now, subject, incarnation),
        }
    }

    /// Signs and applies our Dead vote about `subject` at `incarnation`.
    fn cast_vote(&mut self, now: Millis, subject: MemberId, incarnation: u64) {
        self.stats.votes_cast += 1;
        let vote = self.signed(statement(
            subject,
            incarnation,
            MemberState::Dead,
            self.id,
            None,
        ));
        self.apply(now, vote);
    }

    fn on_certificate(&mut self, now: Millis, c: Certificate) {
        let Some(auth) = self.auth.as_mut() else {
            self.stats.messages_ignored += 1;
            return;
        };
        if implausible(now, c.incarnation, REFUTATIONS_PER_BOOT) {
            self.stats.implausible += 1;
            return;
        }
        match auth.check_certificate(&self.roster, &c) {
            Ok(()) => self.commit(now, c),
            Err(_) => self.stats.certificates_refused += 1,
        }
    }

    /// Commits a certified death (a certificate about us is refuted like any accusation).
    fn commit(&mut self, now: Millis, c: Certificate) {
        let Some(idx) = self.roster.index_of(c.subject) else {
            return;
        };
        if idx == self.me {
            let witnesses: Vec<MemberId> = c.witnesses().map(|(w, _)| w).collect();
            let refuted = statement(self.id, c.incarnation, MemberState::Dead, self.id, None);
            self.about_me(now, refuted, &witnesses);
            return;
        }
        if !supersedes(self.members.get(idx), c.incarnation, MemberState::Dead) {
            self.stats.updates_ignored += 1;
            return;
        }
        self.members
            .set(idx, self.me, c.incarnation, MemberState::Dead);
        self.suspicions.remove(idx);
        if let Some(auth) = self.auth.as_mut() {
            auth.checks.remove(&idx);
            auth.settle(c.subject, c.incarnation);
            let held = auth.held_mut(idx);
            held.accusation = None;
            held.certificate = Some(c.clone());
        }
        self.stats.deaths_committed += 1;
        self.stats.updates_applied += 1;
        self.actions.push_back(Action::MemberChanged {
            id: c.subject,
            state: MemberState::Dead,
            incarnation: c.incarnation,
            addr: self.addr_of(c.subject),
        });
        self.enqueue(Key::Member(c.subject), Message::Certificate(c));
    }

    fn on_proof(&mut self, p: EquivocationProof) {
        if self.auth.is_none() {
            self.stats.messages_ignored += 1;
            return;
        }
        match authority::offender(&p) {
            Ok(id) if self.roster.index_of(id).is_some() => self.convict(id, p),
            _ => self.stats.proofs_refused += 1,
        }
    }

    /// Excludes a proven equivocator: its queued rumors go, its votes stop counting, and the
    /// proof spreads so every member does the same.
    fn convict(&mut self, id: MemberId, p: EquivocationProof) {
        let Some(auth) = self.auth.as_mut() else {
            return;
        };
        if id == self.id || !auth.exclude(id) {
            return;
        }
        self.stats.equivocators_excluded += 1;
        self.broadcasts.drop_rumors_of(id);
        self.actions.push_back(Action::Excluded(id));
        let proof = Message::Equivocation(p);
        if fits_alone(&self.cfg, &proof) {
            self.enqueue(Key::Proof(id), proof);
        } else {
            self.stats.proofs_too_large += 1;
        }
    }

    // ---- rumors ----

    fn on_rumor(&mut self, now: Millis, from: MemberId, mut r: Rumor) {
        if self.roster.index_of(r.origin).is_none() {
            self.stats.rumors_ignored += 1;
            return;
        }
        if implausible(now, r.seq, RUMORS_PER_BOOT) {
            self.stats.implausible += 1;
            return;
        }
        if let Some(auth) = &self.auth {
            if auth.is_excluded(r.origin) {
                self.stats.rumors_excluded += 1;
                return;
            }
            if let Some(held) = auth.conflicting_rumor(&r) {
                let held = Message::Rumor(held.clone());
                if let Some(p) = authority::proof(held, Message::Rumor(r.clone())) {
                    self.convict(r.origin, p);
                }
                return;
            }
        }
        let key = Key::Rumor(r.origin, r.seq);
        // Our own rumors come back from the members we sent them to.
        if r.origin == self.id || self.rumors.seen(r.origin, r.seq) {
            self.stats.rumors_duplicate += 1;
            self.broadcasts.held_by(&key, from);
            return;
        }
        let window = self.rumor_window(now);
        if let Some(cap) = self.origin_cap.as_mut() {
            if !cap.charge(r.origin, window) {
                self.stats.rumors_over_cap += 1;
                return;
            }
        }
        self.rumors.observe(r.origin, r.seq);
        self.stats.rumors_delivered += 1;
        // The payload arrives as a slice of a whole receive region; a rumor kept for
        // retransmission must not pin that region (tens of KiB) for its lifetime.
        r.payload = Bytes::copy_from_slice(&r.payload);
        if let Some(auth) = self.auth.as_mut() {
            auth.hold_rumor(&r);
        }
        self.actions.push_back(Action::Deliver(r.clone()));
        let origin = r.origin;
        self.enqueue(key, Message::Rumor(r));
        self.broadcasts.held_by(&key, from);
        self.broadcasts.held_by(&key, origin);
    }

    /// The origin cap's window: the gossip interval `now` falls in.
    fn rumor_window(&self, now: Millis) -> u64 {
        now.0 / ms(self.cfg.gossip_interval)
    }

    // ---- dissemination ----

    /// Queues `m` for gossip, unless it cannot fit one of our datagrams (a rumor or certificate
    /// from a member with a larger `--mtu`): it would never be sent, and would hold up the
    /// items behind it in every fill.
    fn enqueue(&mut self, key: Key, m: Message) {
        if !fits_alone(&self.cfg, &m) {
            self.stats.broadcasts_too_large += 1;
            return;
        }
        self.stats.broadcasts_dropped += self.broadcasts.push(key, m) as u64;
    }

    /// Gossip rounds follow each other by the interval; aligned, they fall on its multiples for
    /// every member (the simulator's synchronous-rounds mode).
    fn next_gossip_round(&self, now: Millis) -> Millis {
        let g = ms(self.cfg.gossip_interval);
        if self.cfg.aligned_gossip {
            Millis((now.0 / g).saturating_add(1).saturating_mul(g))
        } else {
            now + self.cfg.gossip_interval
        }
    }

    /// Transmissions each broadcast gets: memberlist's limit for membership updates; for rumors
    /// the delivery-target limit, or pushed until the end (the simulator's unlimited mode).
    fn retransmit_limits(&self) -> Limits {
        let n = self.cluster_size();
        let member = self.cfg.retransmit_limit(n);
        let rumor = if self.cfg.unlimited_rumor_retransmit {
            u32::MAX
        } else {
            self.cfg.rumor_retransmit_limit(n)
        };
        Limits { member, rumor }
    }

    fn gossip(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        for t in self.members.sample(&mut self.rng, self.cfg.fanout, &[]) {
            if self.broadcasts.is_empty() {
                break;
            }
            self.stats.gossip_sent += 1;
            self.send(self.roster.id_at(t), Vec::new(), Fill::Gossip);
        }
    }

    /// One join attempt: a sync with every seed while no member is known live, else with one
    /// member already heard of (the seeds may be the ones that are down).
    fn join_round(&mut self, now: Millis) {
        if self.seeds.is_empty() {
            self.next_join = None;
            return;
        }
        let targets = match self.members.sample(&mut self.rng, 1, &[]).first() {
            Some(&t) => vec![self.roster.id_at(t)],
            None => self.seeds.clone(),
        };
        for t in targets {
            self.send_sync(t, Message::SyncRequest);
        }
        self.next_join = Some(now + self.cfg.probe_interval);
    }

    fn answer_sync(&mut self, now: Millis, from: MemberId, from_idx: u32) {
        if self
            .sync_answered
            .get(&from_idx)
            .is_some_and(|t| now < *t + self.cfg.probe_interval)
        {
            self.stats.syncs_refused += 1;
            return;
        }
        if self.sync_answered.len() >= SYNC_ANSWERS_TRACKED {
            let gap = self.cfg.probe_interval;
            self.sync_answered.retain(|_, t| now < *t + gap);
        }
        self.sync_answered.insert(from_idx, now);
        self.stats.syncs_answered += 1;
        self.send_sync(from, Message::SyncReply);
    }

    /// Serf's reconnect: a member declared dead may be alive behind a healed partition, where
    /// nobody on this side would ever speak to it again and the two sides would stay split.
    /// One sync with a random dead member, with probability dead / live, costs the cluster about
    /// one sync per dead member per push-pull period.
    fn reconnect(&mut self) {
        let Some((idx, dead)) = self.members.random_dead(&mut self.rng) else {
            return;
        };
        let live = self.members.live().len().max(1);
        if self.rng.gen_bool((dead as f64 / live as f64).min(1.0)) {
            self.stats.reconnects += 1;
            self.send_sync(self.roster.id_at(idx), Message::SyncRequest);
        }
    }

    /// Push-pull: `marker`, then our whole view, one update per known member, over as many
    /// datagrams as it takes. Suspect and Dead are restated in our name: the entry keeps no
    /// origin (16 bytes per member).
    fn send_sync(&mut self, to: MemberId, marker: Message) {
        let mut dg = Datagrams::new(&self.cfg);
        dg.push(marker);
        if let Some(auth) = &self.auth {
            // Only signed statements can be restated: each entry's own statement, plus the
            // accusation or certificate behind a Suspect or Dead entry.
            for (idx, e) in self.members.entries() {
                let Some(h) = auth.held(idx) else { continue };
                if let Some(own) = &h.own {
                    dg.push(Message::Update(own.clone()));
                }
                match (e.state, &h.accusation, &h.certificate) {
                    (Some(MemberState::Suspect), Some(a), _) => dg.push(Message::Update(a.clone())),
                    (Some(MemberState::Dead), _, Some(c)) => {
                        dg.push(Message::Certificate(c.clone()))
                    }
                    _ => {}
                }
            }
            self.stats.syncs_sent += 1;
            self.emit(to, dg, Fill::Nothing);
            return;
        }
        for (idx, e) in self.members.entries() {
            let Some(state) = e.state else { continue };
            let subject = self.roster.id_at(idx);
            let self_stated = matches!(state, MemberState::Alive | MemberState::Left);
            let origin = if self_stated { subject } else { self.id };
            let addr = if state == MemberState::Alive {
                self.addr_of(subject)
            } else {
                None
            };
            dg.push(Message::Update(statement(
                subject,
                e.incarnation,
                state,
                origin,
                addr,
            )));
        }
        self.stats.syncs_sent += 1;
        self.emit(to, dg, Fill::Nothing);
    }

    fn send(&mut self, to: MemberId, messages: Vec<Message>, fill: Fill) {
        let mut dg = Datagrams::new(&self.cfg);
        for m in messages {
            dg.push(m);
        }
        self.emit(to, dg, fill);
    }

    /// Queues `dg` for the driver, first filling the free space of its last datagram from the
    /// broadcast queue as `fill` says.
    fn emit(&mut self, to: MemberId, mut dg: Datagrams, fill: Fill) {
        let from_queue = match fill {
            Fill::Nothing => false,
            Fill::Piggyback => self.cfg.piggyback,
            Fill::Gossip => true,
        };
        if from_queue {
            let limits = self.retransmit_limits();
            let (packet, out) = dg.last();
            self.broadcasts.fill(packet, out, limits, to);
        }
        for messages in dg.finish() {
            self.stats.datagrams_out += 1;
            self.actions.push_back(Action::Send { to, messages });
        }
    }
}

/// A converged start, for drivers of large simulated clusters (the issue 7 simulator): joining
/// 10,000 members through push-pull would queue every member's Alive in every core's broadcast
/// queue (gigabytes at that scale) and measure the join storm instead of the protocol at rest.
impl Core {
    /// Marks `members` alive at the given incarnations, as if push-pull had delivered them,
    /// without queueing broadcasts or emitting `MemberChanged` (nothing changed for the driver,
    /// which booted them). This member itself and ids off the roster are skipped; a statement
    /// older than what the view holds is ignored. Meant right after [`Core::new`], before any
    /// other input, at the same `now`.
    ///
    /// At rest, members' push-pulls fall anywhere in the period scaled to the cluster, so the
    /// next one is drawn again from it. `Core::new` draws from the unscaled period, as a member
    /// that knows nobody yet must: left there, 10,000 members started together ran ten times
    /// their steady sync load for their first half minute.
    pub fn assume_alive(
        &mut self,
        now: Millis,
        members: impl IntoIterator<Item = (MemberId, u64)>,
    ) {
        for (id, incarnation) in members {
            let Some(idx) = self.roster.index_of(id).filter(|i| *i != self.me) else {
                continue;
            };
            if supersedes(self.members.get(idx), incarnation, MemberState::Alive)
                && self
                    .members
                    .set(idx, self.me, incarnation, MemberState::Alive)
            {
                self.prober.insert(idx, &mut self.rng);
            }
        }
        let period = self.cfg.push_pull_period(self.cluster_size());
        self.next_push_pull = now + period.mul_f64(self.rng.gen::<f64>());
    }
}
