// SPDX-License-Identifier: GPL-2.0-only
//! `idle-conns ADDR COUNT [SOURCE_IP]`: the hostile local user of the hardening tests.
//! Holds COUNT idle TCP connections to ADDR (never a TLS byte), reconnecting each one
//! the server closes, until stdin closes. Prints `open N` once the first round is
//! done. Run it unprivileged (setpriv) so it has only what any customer has.

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

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: idle-conns ADDR COUNT");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("ADDR is ip:port");
    let count: usize = count.parse().expect("COUNT is a number");
    raise_nofile();
    let mut conns: Vec<Option<TcpStream>> = (0..count).map(|_| connect(addr)).collect();
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
        for c in conns.iter_mut() {
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
                *c = connect(addr);
                reconnects += 1;
            }
        }
    }
    eprintln!("idle-conns: {reconnects} reconnects");
}
