//! Protocol counters for metrics and reports.
//! Concurrency: plain data owned by one `Core`; drivers copy it out.

/// Monotonic counters of one core since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_in: u64,
    /// Datagrams claiming a sender that is not on the roster (or this member itself).
    pub foreign_sender: u64,
    pub probes_sent: u64,
    pub acks_received: u64,
    pub indirect_probes_sent: u64,
    pub nacks_received: u64,
    pub probe_failures: u64,
    /// Probes relayed for others (ping-req) and those refused because too many were in flight.
    pub relays: u64,
    pub relays_refused: u64,
    pub suspicions_raised: u64,
    pub suspicion_confirmations: u64,
    /// Suspicions (or deaths) of this member that it refuted with a higher incarnation.
    pub refutations: u64,
    pub deaths_declared: u64,
    pub updates_applied: u64,
    /// Stale, malformed or unknown-member updates that changed nothing.
    pub updates_ignored: u64,
    pub rumors_published: u64,
    pub rumors_delivered: u64,
    pub rumors_duplicate: u64,
    /// Rumors whose origin is not on the roster.
    pub rumors_ignored: u64,
    /// Statements, certificates and rumors at an incarnation or sequence number of an epoch no
    /// boot can have reached yet.
    pub implausible: u64,
    /// Rumors dropped because their origin reached its cap for the gossip interval.
    pub rumors_over_cap: u64,
    /// Broadcasts dropped from the bounded queue before their retransmissions were done.
    pub broadcasts_dropped: u64,
    /// Received rumors and certificates too large for one of our datagrams: delivered or
    /// applied here, not forwarded.
    pub broadcasts_too_large: u64,
    pub gossip_sent: u64,
    pub syncs_sent: u64,
    pub syncs_answered: u64,
    /// Sync requests not answered because the same member was answered within a probe interval.
    pub syncs_refused: u64,
    /// Syncs sent to a member we hold dead, in case a partition between us has healed.
    pub reconnects: u64,
    /// Stray acks, and certificates or proofs without the authority layer.
    pub messages_ignored: u64,
    // The authority layer's counters (zero without it).
    /// Unsigned statements, or statements by a convicted equivocator.
    pub statements_refused: u64,
    /// Accusations at an incarnation the accused never signed.
    pub accusations_refused: u64,
    /// Dead votes by members that are not the subject's witnesses.
    pub votes_refused: u64,
    pub votes_received: u64,
    /// Our own votes, and suspicions we did not vote on because the suspect answered our pings.
    pub votes_cast: u64,
    pub votes_withheld: u64,
    pub witness_pings: u64,
    /// Suspicions that ran out here with no vote of ours to give (we are not a witness).
    pub suspicions_uncertified: u64,
    pub certificates_formed: u64,
    pub certificates_refused: u64,
    pub deaths_committed: u64,
    pub equivocators_excluded: u64,
    pub proofs_refused: u64,
    /// Proofs too large for one datagram: the equivocator is excluded here only.
    pub proofs_too_large: u64,
    pub rumors_excluded: u64,
    pub datagrams_out: u64,
}
