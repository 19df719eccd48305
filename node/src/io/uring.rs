//! The io_uring receiver: one multishot `IORING_OP_RECVMSG` armed on the socket, drawing from a
//! provided buffer ring (kernel ≥ 6.0; `io_uring_setup_buf_ring(3)`, `io_uring_prep_recvmsg_multishot(3)`).
//! Every buffer in the ring is a carved `BytesMut` slot (`rxbuf.rs`): when a completion names
//! slot `bid`, that slot leaves as the datagram (header and name skipped by moving its start,
//! no copy) and a fresh slot is published in its place. If the ring runs dry the kernel ends
//! the multishot with `ENOBUFS`; we count it and re-arm. Any other error completion is returned
//! after the datagrams completed before it, with every buffer handed back.
//!
//! Concurrency: one `UringRx` per io thread; only that thread touches its ring.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use io_uring::types::{BufRingEntry, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, types, IoUring};

use super::mmsg::sockaddr;
use super::rxbuf::Carver;
use super::{Datagram, Receiver};

/// Buffers in the ring: a full default socket buffer's worth of small datagrams between two
/// refills; a power of two, as the kernel requires.
pub const RING_BUFFERS: u16 = 1024;
const BGID: u16 = 7;
const RECV_TAG: u64 = 1;
/// Header the kernel writes before the name in each multishot buffer:
/// `struct io_uring_recvmsg_out { __u32 namelen, controllen, payloadlen, flags; }`.
const OUT_HEADER: usize = 4 * std::mem::size_of::<u32>();

/// Page-aligned memory the kernel reads the buffer ring from.
struct RingMem {
    ptr: *mut BufRingEntry,
    layout: Layout,
}

impl RingMem {
    fn new(entries: u16) -> std::io::Result<RingMem> {
        let layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        // SAFETY: non-zero size, valid alignment.
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if ptr.is_null() {
            return Err(std::io::Error::other("out of memory for the buffer ring"));
        }
        Ok(RingMem { ptr, layout })
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring was unregistered (or the
        // io_uring dropped) before, see `UringRx::drop`.
        unsafe { dealloc(self.ptr.cast(), self.layout) }
    }
}

pub struct UringRx {
    // Field order matters: the ring (and its registration) goes before the memory it reads.
    ring: IoUring,
    mem: RingMem,
    sock: UdpSocket,
    carver: Carver,
    slots: Vec<BytesMut>,
    tail: u16,
    msghdr: Box<libc::msghdr>,
    armed: bool,
    truncated: u64,
    rearms: u64,
    /// A receive error met behind datagrams of the same batch: those go out first, and the
    /// error with the next call.
    deferred: Option<std::io::Error>,
    /// One call's completions and the buffer ids to hand back, kept between calls.
    cq: Vec<(i32, u32)>,
    refilled: Vec<u16>,
}

// SAFETY: the raw pointers (ring memory, msghdr) are owned by this struct and only used by the
// thread that owns it; moving it to that thread before use is sound.
unsafe impl Send for UringRx {}

impl UringRx {
    /// Sets up the ring, registers the buffers and arms the receive. Fails if this kernel or
    /// policy does not allow io_uring, provided buffer rings or multishot recvmsg.
    pub fn new(sock: UdpSocket, buf_size: usize) -> std::io::Result<UringRx> {
        // Not SINGLE_ISSUER: the ring is set up on the main thread (to fall back to recvmmsg before
        // any thread starts) and then used by its io thread.
        // The completion queue holds a completion for every ring buffer at once, so it never
        // overflows into the kernel's slow overflow list while we take one batch per call.
        let ring = IoUring::builder()
            .setup_cqsize(2 * u32::from(RING_BUFFERS))
            .build(256)?;
        let mem = RingMem::new(RING_BUFFERS)?;
        // SAFETY: `mem` holds RING_BUFFERS page-aligned entries and outlives the registration
        // (unregistered in Drop before `mem` is freed).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(mem.ptr as u64, RING_BUFFERS, BGID, 0)?
        };
        // SAFETY: all-zero is a valid msghdr; we set the two lengths the kernel reads.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        // Room for an IPv6 address (IPv4 fits too), not a whole sockaddr_storage: the payload
        // follows the name in each buffer, and every byte before it is another cache line the
        // kernel's copy touches per datagram.
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let mut carver = Carver::new(buf_size + OUT_HEADER + msghdr.msg_namelen as usize);
        let slots = (0..RING_BUFFERS).map(|_| carver.carve()).collect();
        let mut rx = UringRx {
            ring,
            mem,
            sock,
            carver,
            slots,
            tail: 0,
            msghdr,
            armed: false,
            truncated: 0,
            rearms: 0,
            deferred: None,
            cq: Vec::with_capacity(super::mmsg::BATCH),
            refilled: Vec::with_capacity(super::mmsg::BATCH),
        };
        for bid in 0..RING_BUFFERS {
            rx.publish(bid);
        }
        rx.commit_tail();
        rx.arm()?;
        Ok(rx)
    }

    /// Multishot receive re-arms after the kernel ended it (ring ran dry).
    pub fn rearms(&self) -> u64 {
        self.rearms
    }

    /// Writes slot `bid` into the next ring entry (made visible by `commit_tail`).
    fn publish(&mut self, bid: u16) {
        let slot = &mut self.slots[usize::from(bid)];
        let idx = usize::from(self.tail & (RING_BUFFERS - 1));
        // SAFETY: idx < RING_BUFFERS, inside the ring memory; the kernel only reads entries
        // between its head and our published tail, and this one is past the tail.
        let e = unsafe { &mut *self.mem.ptr.add(idx) };
        e.set_addr(slot.spare_capacity_mut().as_mut_ptr() as u64);
        e.set_len((slot.capacity() - slot.len()) as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn commit_tail(&self) {
        // SAFETY: the tail field lives in the first entry of our ring memory; the kernel reads
        // it with acquire semantics, so a release store publishes the entries written before.
        unsafe {
            (*BufRingEntry::tail(self.mem.ptr).cast::<AtomicU16>())
                .store(self.tail, Ordering::Release)
        };
    }

    fn arm(&mut self) -> std::io::Result<()> {
        let sqe = opcode::RecvMsgMulti::new(types::Fd(self.sock.as_raw_fd()), &*self.msghdr, BGID)
            .build()
            .user_data(RECV_TAG);
        // SAFETY: the msghdr and the socket live in `self`, which outlives the operation (the
        // ring is dropped first).
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| std::io::Error::other("submission queue full"))?;
        self.armed = true;
        Ok(())
    }
}

impl Receiver for UringRx {
    fn recv_batch(&mut self, out: &mut Vec<Datagram>, wait: Duration) -> std::io::Result<usize> {
        // Completions that carry no datagram (a multishot ended by ENOBUFS) do not end the
        // call: like recvmmsg, it returns 0 only when `wait` passed with nothing received.
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got = self.recv_some(
                out,
                deadline.saturating_duration_since(std::time::Instant::now()),
            )?;
            if got > 0 || std::time::Instant::now() >= deadline {
                return Ok(got);
            }
        }
    }

    fn truncated(&self) -> u64 {
        self.truncated
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}

impl UringRx {
    /// One pass: (re)arm, wait up to `wait` if nothing is pending, take at most one batch.
    fn recv_some(&mut self, out: &mut Vec<Datagram>, wait: Duration) -> std::io::Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if !self.armed {
            self.arm()?;
            self.rearms += 1;
        }
        if self.ring.completion().is_empty() {
            let ts = Timespec::from(wait);
            let args = SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::ETIME)
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let (mut got, mut failed) = (0, None);
        self.refilled.clear();
        self.cq.clear();
        // At most one batch per call: the rest waits in the completion queue, and the pool's
        // queue gets batches it can take instead of one burst it must shed.
        self.cq.extend(
            self.ring
                .completion()
                .take(super::mmsg::BATCH)
                .map(|c| (c.result(), c.flags())),
        );
        for i in 0..self.cq.len() {
            let (res, flags) = self.cq[i];
            if !cqueue::more(flags) {
                self.armed = false;
            }
            if res < 0 {
                // The batch is finished first: its datagrams delivered and every buffer it
                // took handed back to the ring (returning here lost both).
                if -res != libc::ENOBUFS && -res != libc::EINTR {
                    failed.get_or_insert(std::io::Error::from_raw_os_error(-res));
                }
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                continue;
            };
            if usize::from(bid) >= self.slots.len() {
                continue;
            }
            let len = res as usize;
            let mut buf = std::mem::replace(&mut self.slots[usize::from(bid)], self.carver.carve());
            self.refilled.push(bid);
            if len > buf.capacity() {
                continue;
            }
            // SAFETY: the kernel wrote `len` bytes into this buffer's spare capacity.
            unsafe { buf.set_len(len) };
            let Ok(m) = RecvMsgOut::parse(&buf, &self.msghdr) else {
                continue;
            };
            if m.is_payload_truncated() || m.is_name_data_truncated() {
                self.truncated += 1;
                continue;
            }
            let (payload_len, name) = (m.payload_data().len(), m.name_data());
            // SAFETY: the kernel wrote a sockaddr of `incoming_name_len` bytes (≤ storage size,
            // not truncated) at the start of the name area.
            let from = {
                let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let n = name
                    .len()
                    .min(std::mem::size_of::<libc::sockaddr_storage>());
                // SAFETY: copying n ≤ size_of(storage) bytes into the local storage.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        name.as_ptr(),
                        (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                        n,
                    )
                };
                sockaddr(&ss)
            };
            let Some(from) = from else { continue };
            buf.advance(OUT_HEADER + self.msghdr.msg_namelen as usize);
            buf.truncate(payload_len);
            if payload_len + 1
                >= self.carver.slot_size() - OUT_HEADER - self.msghdr.msg_namelen as usize
            {
                self.truncated += 1;
                continue;
            }
            out.push(Datagram { from, buf });
            got += 1;
        }
        for i in 0..self.refilled.len() {
            self.publish(self.refilled[i]);
        }
        self.commit_tail();
        match failed {
            Some(e) if got == 0 => Err(e),
            Some(e) => {
                self.deferred = Some(e);
                Ok(got)
            }
            None => Ok(got),
        }
    }
}

impl Drop for UringRx {
    fn drop(&mut self) {
        // The ring may still reference our buffers: unregister before the memory goes.
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver on `rx`, or None (the test skips) where this kernel refuses io_uring.
    fn receiver(rx: UdpSocket) -> Option<UringRx> {
        UringRx::new(rx, super::super::buffer_size(100))
            .inspect_err(|e| eprintln!("io_uring unavailable here, skipping: {e}"))
            .ok()
    }

    #[test]
    fn receives_through_the_buffer_ring_and_recycles() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = rx.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let Some(mut r) = receiver(rx) else {
            return;
        };
        let mut out = Vec::new();
        // more datagrams than ring buffers: slots must be recycled
        let total = usize::from(RING_BUFFERS) * 3;
        let mut sent = 0;
        let mut rounds = 0;
        while out.len() < total && rounds < 10_000 {
            while sent < total && sent < out.len() + 256 {
                tx.send_to(&(sent as u32).to_be_bytes(), addr).unwrap();
                sent += 1;
            }
            r.recv_batch(&mut out, Duration::from_millis(50)).unwrap();
            rounds += 1;
        }
        assert_eq!(out.len(), total);
        for (i, d) in out.iter().enumerate() {
            assert_eq!(&d.buf[..], &(i as u32).to_be_bytes()[..]);
            assert_eq!(d.from, tx.local_addr().unwrap());
        }
        tx.send_to(&[1; 300], addr).unwrap();
        r.recv_batch(&mut out, Duration::from_millis(100)).unwrap();
        assert_eq!(r.truncated(), 1);
        assert_eq!(
            r.recv_batch(&mut out, Duration::from_millis(20)).unwrap(),
            0
        );
    }

    #[test]
    fn a_receive_error_keeps_the_datagrams_and_buffers_before_it() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (peer, rx) = (
            tx.local_addr().unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        let addr = rx.local_addr().unwrap();
        // Connected, so an ICMP port-unreachable for what it sends comes back as a receive
        // error (ECONNREFUSED) on its socket, behind the datagrams already queued.
        rx.connect(peer).unwrap();
        let probe = rx.try_clone().unwrap();
        let Some(mut r) = receiver(rx) else {
            return;
        };
        let mut out = Vec::new();
        assert_eq!(r.recv_batch(&mut out, Duration::ZERO).unwrap(), 0);
        for i in 0..4u32 {
            tx.send_to(&i.to_be_bytes(), addr).unwrap();
        }
        drop(tx);
        probe.send(&[0]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // The datagrams first, then the error, then the receiver carries on.
        assert_eq!(
            r.recv_batch(&mut out, Duration::from_millis(100)).unwrap(),
            4
        );
        let payloads: Vec<&[u8]> = out.iter().map(|d| &d.buf[..]).collect();
        assert_eq!(
            payloads,
            (0..4u32).map(u32::to_be_bytes).collect::<Vec<_>>()
        );
        let e = r
            .recv_batch(&mut out, Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            r.recv_batch(&mut out, Duration::from_millis(20)).unwrap(),
            0
        );
    }
}
