// SPDX-License-Identifier: GPL-2.0-only
//! A DNS server for the tests: UDP, inside a test network namespace, answering PTR,
//! A and AAAA from a table (NXDOMAIN for anything else). It stops when dropped.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::NetPair;

/// One record: a PTR (`name` -> host) or an address (`name` -> ip).
#[derive(Clone, Debug)]
pub enum Record {
    Ptr(String),
    Addr(IpAddr),
}

pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `10.2.0.192.in-addr.arpa` for 192.0.2.10.
pub fn ptr_name(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(at + 1)?, *q.get(at + 2)?]);
    Some((labels.join("."), qtype, at + 5))
}

fn encode_name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn answer(q: &[u8], table: &HashMap<String, Vec<Record>>) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(q)?;
    let mut rdatas: Vec<(u16, Vec<u8>)> = Vec::new();
    for r in table.get(&name).into_iter().flatten() {
        match (r, qtype) {
            (Record::Ptr(h), 12) => rdatas.push((12, encode_name(h))),
            (Record::Addr(IpAddr::V4(a)), 1) => rdatas.push((1, a.octets().to_vec())),
            (Record::Addr(IpAddr::V6(a)), 28) => rdatas.push((28, a.octets().to_vec())),
            _ => {}
        }
    }
    let mut r = q[..end].to_vec();
    r[2] = 0x81 | (q[2] & 0x01);
    r[3] = if table.contains_key(&name) {
        0x80
    } else {
        0x83
    };
    r[6..8].copy_from_slice(&(rdatas.len() as u16).to_be_bytes());
    r[8..12].copy_from_slice(&[0, 0, 0, 0]);
    for (t, rd) in rdatas {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&t.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        r.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        r.extend_from_slice(&rd);
    }
    Some(r)
}

impl DnsServer {
    /// Serve `table` on `addr` inside network namespace `ns`.
    pub fn start(ns: &str, addr: SocketAddr, table: HashMap<String, Vec<Record>>) -> Self {
        let sock = NetPair::in_ns(ns, move || {
            UdpSocket::bind(addr).expect("bind the test DNS server")
        });
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(r) = answer(&buf[..n], &table) {
                    let _ = sock.send_to(&r, from);
                }
            }
        });
        DnsServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
