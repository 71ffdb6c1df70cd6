// SPDX-License-Identifier: GPL-2.0-only
//! `idle-conns ADDR COUNT [spread]`: the hostile local user of the hardening tests.
//! Holds COUNT idle TCP connections to ADDR (never a TLS byte), reconnecting each one
//! the server closes, until stdin closes. With `spread`, connection i comes from its
//! own loopback address (127.1.x.y: any local user may bind those). Prints `open N`
//! once the first round is done. Run it unprivileged (setpriv) so it has only what
//! any customer has.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with a valid struct; an unprivileged process may raise
    // its soft limit up to the hard one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Connection `i`'s source address when spreading: 127.1.0.1, 127.1.0.2, ...
fn source(i: usize) -> std::net::Ipv4Addr {
    let n = i as u32 + 1;
    std::net::Ipv4Addr::new(127, 1, (n >> 8) as u8, (n & 0xff) as u8)
}

fn connect(addr: SocketAddr, from: Option<std::net::Ipv4Addr>) -> Option<TcpStream> {
    let s = match (from, addr) {
        (Some(src), SocketAddr::V4(dst)) => connect_from(src, dst)?,
        _ => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?,
    };
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// A blocking connect from `src` (bind before connect; std cannot).
fn connect_from(src: std::net::Ipv4Addr, dst: std::net::SocketAddrV4) -> Option<TcpStream> {
    use std::os::fd::FromRawFd;
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own, with valid sockaddr_in
    // structs of the length passed; the descriptor is closed on every error path
    // (by the TcpStream that owns it).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let stream = TcpStream::from_raw_fd(fd);
        let (a, b) = (sin(src, 0), sin(*dst.ip(), dst.port()));
        if libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len) != 0
        {
            return None;
        }
        Some(stream)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: idle-conns ADDR COUNT [spread]");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR is ip:port");
    let count: usize = count.parse().expect("COUNT is a number");
    let spread = args.next().as_deref() == Some("spread");
    let from = |i: usize| spread.then(|| source(i));
    raise_nofile();
    let mut conns: Vec<Option<TcpStream>> = (0..count).map(|i| connect(addr, from(i))).collect();
    let open = conns.iter().filter(|c| c.is_some()).count();
    println!("open {open}");
    let _ = std::io::stdout().flush();
    // Stop when the test closes our stdin.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1];
        let _ = std::io::stdin().read(&mut buf);
        let _ = tx.send(());
    });
    let mut reconnects = 0u64;
    while rx.recv_timeout(Duration::from_millis(200)).is_err() {
        for (i, c) in conns.iter_mut().enumerate() {
            let closed = match c {
                Some(s) => {
                    let mut b = [0u8; 64];
                    match s.read(&mut b) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    }
                }
                None => true,
            };
            if closed {
                *c = connect(addr, from(i));
                reconnects += 1;
            }
        }
    }
    eprintln!("idle-conns: {reconnects} reconnects");
}
