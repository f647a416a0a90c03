//! The listening socket. An unspecified IPv6 address (`:port`, `[::]:port`) is one
//! dual-stack socket that takes IPv6 and IPv4 connections (IPV6_V6ONLY off, whatever
//! `net.ipv6.bindv6only` says); where the kernel has no IPv6 (`ipv6.disable=1`, or a
//! sandbox that refuses IPv6 sockets), the same port on every IPv4 address instead.
//! Any other address is bound as given.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel queues before `accept`, as tokio's own `bind`;
/// `http::run` raises it to the system's maximum when it starts serving.
const BACKLOG: i32 = 1024;

/// Bind `addr` as described in the module docs. Call it inside the tokio runtime.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    if !(addr.is_ipv6() && addr.ip().is_unspecified()) {
        return bind(addr, false);
    }
    match bind(addr, true) {
        Err(e) if ipv6_unavailable(&e) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!(error = %e, address = %v4, "no IPv6 here: listening on IPv4 only");
            bind(v4, false)
        }
        other => other,
    }
}

fn bind(addr: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // As tokio's and std's bind: a restart may reuse the port while old connections
    // are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Errors that mean this kernel (or sandbox) has no IPv6 to offer.
fn ipv6_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}
