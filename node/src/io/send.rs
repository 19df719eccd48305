//! Batched sends: the core thread hands each round's sealed datagrams over in one call.
//! `MmsgTx` uses `sendmmsg(2)`; `UringTx` queues one `IORING_OP_SENDMSG` per datagram and
//! submits them together, waiting for their completions before returning (so the buffers and
//! headers the kernel reads stay alive exactly as long as needed).
//!
//! Concurrency: a transmitter belongs to the thread that sends (the core thread).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use bytes::Bytes;
use io_uring::{opcode, types, IoUring};
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage};

/// Datagrams per system call or submission: as for receiving (`mmsg::BATCH`).
pub const BATCH: usize = super::mmsg::BATCH;

/// What a batch send achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub datagrams: u64,
    pub bytes: u64,
    pub errors: u64,
}

pub trait Transmitter {
    fn send_batch(&mut self, batch: &[(SocketAddr, Bytes)]) -> Sent;
}

pub struct MmsgTx {
    sock: UdpSocket,
}

impl MmsgTx {
    pub fn new(sock: UdpSocket) -> MmsgTx {
        MmsgTx { sock }
    }
}

impl Transmitter for MmsgTx {
    fn send_batch(&mut self, batch: &[(SocketAddr, Bytes)]) -> Sent {
        let mut out = Sent::default();
        // Headers hold raw pointers (not Send), so they live for one call; a round's flush is
        // one allocation.
        let mut hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut rest = batch;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(BATCH)];
            let slices: Vec<[std::io::IoSlice<'_>; 1]> = chunk
                .iter()
                .map(|(_, d)| [std::io::IoSlice::new(d)])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|(a, _)| Some(SockaddrStorage::from(*a)))
                .collect();
            match sendmmsg(
                self.sock.as_raw_fd(),
                &mut hdrs,
                &slices,
                &addrs,
                [],
                MsgFlags::empty(),
            ) {
                Ok(res) => {
                    let mut n = 0;
                    for r in res {
                        out.datagrams += 1;
                        out.bytes += r.bytes as u64;
                        n += 1;
                    }
                    // A partial send stops at the first datagram the kernel refused.
                    if n < chunk.len() {
                        out.errors += 1;
                        n += 1;
                    }
                    rest = &rest[n.max(1)..];
                }
                Err(_) => {
                    // The first datagram was refused (e.g. an unreachable peer): skip it.
                    out.errors += 1;
                    rest = &rest[1..];
                }
            }
        }
        out
    }
}

pub struct UringTx {
    ring: IoUring,
    sock: UdpSocket,
}

impl UringTx {
    pub fn new(sock: UdpSocket) -> std::io::Result<UringTx> {
        Ok(UringTx {
            ring: IoUring::builder().build(BATCH as u32 * 2)?,
            sock,
        })
    }
}

impl Transmitter for UringTx {
    fn send_batch(&mut self, batch: &[(SocketAddr, Bytes)]) -> Sent {
        let mut out = Sent::default();
        for chunk in batch.chunks(BATCH) {
            let names: Vec<SockaddrStorage> = chunk
                .iter()
                .map(|(a, _)| SockaddrStorage::from(*a))
                .collect();
            let mut iovs: Vec<libc::iovec> = chunk
                .iter()
                .map(|(_, d)| libc::iovec {
                    iov_base: d.as_ptr() as *mut libc::c_void,
                    iov_len: d.len(),
                })
                .collect();
            // SAFETY: all-zero is a valid msghdr; the fields the kernel reads are set below.
            let mut hdrs: Vec<libc::msghdr> = (0..chunk.len())
                .map(|_| unsafe { std::mem::zeroed() })
                .collect();
            for (i, h) in hdrs.iter_mut().enumerate() {
                h.msg_name = names[i].as_ptr() as *mut libc::c_void;
                h.msg_namelen = names[i].len();
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
            }
            let mut queued = 0;
            for (i, h) in hdrs.iter().enumerate() {
                let sqe = opcode::SendMsg::new(types::Fd(self.sock.as_raw_fd()), h)
                    .build()
                    .user_data(i as u64);
                // SAFETY: the msghdr, its iovec, its address and the datagram bytes live in
                // `hdrs`, `iovs`, `names` and `batch` until every completion of this chunk has
                // been reaped below.
                if unsafe { self.ring.submission().push(&sqe) }.is_err() {
                    break;
                }
                queued += 1;
            }
            out.errors += (chunk.len() - queued) as u64;
            let mut reaped = 0;
            while reaped < queued {
                if self.ring.submit_and_wait(queued - reaped).is_err() {
                    // Cannot wait: the kernel may still read our buffers, so keep waiting in
                    // a plain loop rather than returning.
                    std::thread::yield_now();
                }
                for c in self.ring.completion() {
                    reaped += 1;
                    if c.result() < 0 {
                        out.errors += 1;
                    } else {
                        out.datagrams += 1;
                        out.bytes += c.result() as u64;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tx: &mut dyn Transmitter) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let batch: Vec<(SocketAddr, Bytes)> = (0..150u32)
            .map(|i| (to, Bytes::from(i.to_be_bytes().to_vec())))
            .collect();
        let sent = tx.send_batch(&batch);
        assert_eq!(
            sent,
            Sent {
                datagrams: 150,
                bytes: 600,
                errors: 0
            }
        );
        let mut buf = [0u8; 16];
        for i in 0..150u32 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_be_bytes());
        }
    }

    #[test]
    fn mmsg_sends_every_datagram_in_order() {
        check(&mut MmsgTx::new(UdpSocket::bind("127.0.0.1:0").unwrap()));
    }

    #[test]
    fn uring_sends_every_datagram() {
        match UringTx::new(UdpSocket::bind("127.0.0.1:0").unwrap()) {
            Ok(mut t) => check(&mut t),
            Err(e) => eprintln!("io_uring unavailable here, skipping: {e}"),
        }
    }
}
