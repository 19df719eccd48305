//! The baseline receiver: `recvmmsg(2)` of up to `BATCH` datagrams per call straight into
//! carved buffers (`rxbuf.rs`), blocking in the kernel with `MSG_WAITFORONE` semantics via a
//! receive timeout, so an idle node sleeps.
//!
//! Concurrency: one `MmsgRx` per io thread.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;

use super::rxbuf::Carver;
use super::{Datagram, Receiver};

/// Datagrams per `recvmmsg` call: past ~64 the syscall saving flattens and the batch's
/// buffers stop fitting in L2.
pub const BATCH: usize = 64;

pub struct MmsgRx {
    sock: UdpSocket,
    carver: Carver,
    slots: Vec<BytesMut>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    wait: Option<Duration>,
    truncated: u64,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` point into `slots`/`names`, owned by the same
// struct and rebuilt before every call; nothing else holds them.
unsafe impl Send for MmsgRx {}

impl MmsgRx {
    pub fn new(sock: UdpSocket, buf_size: usize) -> MmsgRx {
        let mut carver = Carver::new(buf_size);
        let slots = (0..BATCH).map(|_| carver.carve()).collect();
        // SAFETY: all-zero is a valid value of these plain C structs.
        let (names, iovs, hdrs) = unsafe {
            (
                vec![std::mem::zeroed(); BATCH],
                vec![std::mem::zeroed(); BATCH],
                vec![std::mem::zeroed(); BATCH],
            )
        };
        MmsgRx {
            sock,
            carver,
            slots,
            names,
            iovs,
            hdrs,
            wait: None,
            truncated: 0,
        }
    }

    fn set_wait(&mut self, wait: Duration) -> std::io::Result<()> {
        if self.wait != Some(wait) {
            // A zero timeout means "block forever" to the kernel: never ask for that.
            self.sock
                .set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
            self.wait = Some(wait);
        }
        Ok(())
    }
}

impl Receiver for MmsgRx {
    fn recv_batch(&mut self, out: &mut Vec<Datagram>, wait: Duration) -> std::io::Result<usize> {
        // Not waiting is a flag, not a timeout: no setsockopt between a blocking receive and
        // the non-blocking ones that follow it under load.
        let flags = if wait.is_zero() {
            libc::MSG_DONTWAIT
        } else {
            self.set_wait(wait)?;
            libc::MSG_WAITFORONE
        };
        for i in 0..BATCH {
            let slot = &mut self.slots[i];
            self.iovs[i] = libc::iovec {
                iov_base: slot.spare_capacity_mut().as_mut_ptr().cast(),
                iov_len: slot.capacity() - slot.len(),
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at a live iovec over its slot's spare capacity and at a
        // live sockaddr_storage, all owned by `self` and not moved during the call.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let mut got = 0;
        for i in 0..n {
            let len = self.hdrs[i].msg_len as usize;
            let trunc = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let Some(from) = sockaddr(&self.names[i]) else {
                continue;
            };
            if trunc || len >= self.carver.slot_size() {
                self.truncated += 1;
                continue;
            }
            let mut buf = std::mem::replace(&mut self.slots[i], self.carver.carve());
            // SAFETY: the kernel wrote `len` bytes into this slot's spare capacity
            // (len < capacity checked above).
            unsafe { buf.set_len(len) };
            out.push(Datagram { from, buf });
            got += 1;
        }
        Ok(got)
    }

    fn truncated(&self) -> u64 {
        self.truncated
    }

    fn name(&self) -> &'static str {
        "mmsg"
    }
}

/// Converts a kernel-filled `sockaddr_storage` to a `SocketAddr`.
pub(crate) fn sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_batches_and_counts_oversized() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = rx.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = MmsgRx::new(rx, super::super::buffer_size(100));
        for i in 0..10u8 {
            tx.send_to(&[i; 50], addr).unwrap();
        }
        tx.send_to(&[9; 500], addr).unwrap();
        let mut out = Vec::new();
        let mut tries = 0;
        while out.len() < 10 && tries < 20 {
            r.recv_batch(&mut out, Duration::from_millis(100)).unwrap();
            tries += 1;
        }
        assert_eq!(out.len(), 10);
        for (i, d) in out.iter().enumerate() {
            assert_eq!(&d.buf[..], &[i as u8; 50][..]);
            assert_eq!(d.from, tx.local_addr().unwrap());
        }
        r.recv_batch(&mut out, Duration::from_millis(100)).unwrap();
        assert_eq!(r.truncated(), 1);
        // an idle socket returns after the wait, with nothing
        assert_eq!(
            r.recv_batch(&mut out, Duration::from_millis(20)).unwrap(),
            0
        );
    }
}
