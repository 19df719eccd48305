//! UDP sockets for the io threads: one `SO_REUSEPORT` socket per thread on the same address,
//! so the kernel spreads flows across threads, plus an exclusive port lock so that a second
//! rumor on an address already in use still fails instead of silently joining the group.
//!
//! The lock is an abstract-namespace unix socket named after the address: binding it is
//! exclusive, and the kernel releases it when the process dies, so a crash leaves no stale lock.
//! A probe bind without `SO_REUSEPORT` first catches any other program on the port.
//!
//! Concurrency: built on the main thread; each socket then belongs to one io thread.

use std::net::{SocketAddr, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive buffer asked for: absorbs bursts of several thousand datagrams while a thread is
/// busy. The kernel caps it at `net.core.rmem_max` unless we may force it.
pub const RECV_BUFFER: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("{addr} is already in use")]
    InUse { addr: SocketAddr },
    #[error("cannot bind {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Holds the exclusive claim on an address for the life of the process's sockets.
#[derive(Debug)]
pub struct PortLock {
    _lock: UnixDatagram,
}

/// Binds `threads` reuse-port sockets on `addr` (port 0: the kernel picks one port for all).
/// Returns the sockets, the bound address and the lock that must outlive them.
pub fn bind_group(
    addr: SocketAddr,
    threads: usize,
) -> Result<(Vec<UdpSocket>, SocketAddr, PortLock), BindError> {
    let io = |source| BindError::Io { addr, source };
    // Probe without SO_REUSEPORT: fails if anything else holds the port.
    let probe = new_socket(addr, false).map_err(io)?;
    probe.bind(&addr.into()).map_err(|e| in_use_or(addr, e))?;
    let bound = probe
        .local_addr()
        .map_err(io)?
        .as_socket()
        .ok_or_else(|| io(std::io::Error::other("not an inet socket")))?;
    let lock = lock_port(bound)?;
    drop(probe);
    let mut socks = Vec::with_capacity(threads);
    for _ in 0..threads.max(1) {
        let s = new_socket(bound, true).map_err(io)?;
        s.bind(&bound.into()).map_err(|e| in_use_or(bound, e))?;
        socks.push(UdpSocket::from(s));
    }
    Ok((socks, bound, lock))
}

fn in_use_or(addr: SocketAddr, e: std::io::Error) -> BindError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        BindError::InUse { addr }
    } else {
        BindError::Io { addr, source: e }
    }
}

fn lock_port(addr: SocketAddr) -> Result<PortLock, BindError> {
    let name = format!("rumor-port-{addr}");
    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|source| BindError::Io { addr, source })?;
    let lock = UnixDatagram::bind_addr(&sa).map_err(|e| in_use_or(addr, e))?;
    Ok(PortLock { _lock: lock })
}

fn new_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    set_recv_buffer(&s, RECV_BUFFER);
    Ok(s)
}

/// Asks for `bytes` of receive buffer, forcing past `rmem_max` where permitted (root);
/// returns what the kernel granted (it reports twice the usable size).
pub fn set_recv_buffer(s: &Socket, bytes: usize) -> usize {
    if s.set_recv_buffer_size(bytes).is_ok() {
        let _ = force_recv_buffer(s, bytes);
    }
    s.recv_buffer_size().unwrap_or(0)
}

fn force_recv_buffer(s: &Socket, bytes: usize) -> nix::Result<()> {
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBufForce, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_group_on_the_same_port_fails() {
        let (socks, bound, _lock) = bind_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(socks.len(), 2);
        assert_ne!(bound.port(), 0);
        assert!(matches!(bind_group(bound, 2), Err(BindError::InUse { .. })));
        // a plain program on a port also makes us fail
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(matches!(
            bind_group(other.local_addr().unwrap(), 1),
            Err(BindError::InUse { .. })
        ));
    }

    #[test]
    fn lock_is_released_with_the_group() {
        let (socks, bound, lock) = bind_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        drop((socks, lock));
        assert!(bind_group(bound, 1).is_ok());
    }
}
