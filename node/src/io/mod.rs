//! Socket I/O, thread-per-core: each io thread owns one `SO_REUSEPORT` socket and receives
//! batches of datagrams into buffers carved from large regions (`rxbuf.rs`), handed downstream
//! without copies. Two receivers share that contract: `uring` (io_uring multishot recvmsg into a
//! provided buffer ring) and `mmsg` (recvmmsg), the baseline.
//!
//! Concurrency: a receiver belongs to the thread that created it.

pub mod mmsg;
pub mod rxbuf;
pub mod send;
pub mod socket;
pub mod uring;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

/// One received datagram: where from, and its bytes (exactly the payload).
#[derive(Debug)]
pub struct Datagram {
    pub from: SocketAddr,
    pub buf: BytesMut,
}

/// What a receive loop does with a batch.
pub trait Receiver {
    /// Appends the next batch of datagrams to `out`, waiting at most `wait` for the first one.
    /// Returns how many were appended (0 on timeout). Datagrams larger than the buffer size
    /// are dropped and counted in [`Receiver::truncated`].
    fn recv_batch(&mut self, out: &mut Vec<Datagram>, wait: Duration) -> std::io::Result<usize>;
    /// Datagrams dropped because they did not fit a receive buffer.
    fn truncated(&self) -> u64;
    /// The method's name in reports.
    fn name(&self) -> &'static str;
}

/// Receive buffer size for an MTU: room for the largest datagram we accept plus one byte, so
/// an oversized datagram shows up as truncated rather than silently cut.
pub fn buffer_size(mtu: usize) -> usize {
    (mtu + 1).next_multiple_of(64)
}
