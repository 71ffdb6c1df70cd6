// SPDX-License-Identifier: GPL-2.0-only
//! A small DNS stub client (UDP, one question, recursion desired) for the crawler
//! check: PTR, A and AAAA. The answers come from the network, so every length and
//! name pointer is bounds-checked; a response that does not parse is an error,
//! never a panic. Servers are `verified_bots.nameservers`, else /etc/resolv.conf's.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::net::UdpSocket;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Name pointers followed per name, at most (a loop of pointers ends here).
const MAX_JUMPS: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("no nameserver configured or in /etc/resolv.conf")]
    NoServer,
    #[error("no answer from {0}")]
    Timeout(String),
    #[error("server failure (rcode {0})")]
    Rcode(u8),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    Io(String),
}

/// Where queries go, and how long each server gets.
#[derive(Clone, Debug)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

/// The nameservers of a resolv.conf text (port 53).
fn resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

impl Resolver {
    /// `configured`: `ip` or `ip:port` entries; empty: /etc/resolv.conf.
    pub fn new(configured: &[String], timeout: Duration) -> Self {
        let servers = if configured.is_empty() {
            resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            configured
                .iter()
                .filter_map(|s| {
                    s.parse::<SocketAddr>()
                        .ok()
                        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
                })
                .collect()
        };
        Self { servers, timeout }
    }

    /// The names `ip` points back to (PTR). Empty when it has none (NXDOMAIN).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = reverse_name(ip);
        let answers = self.query(&name, TYPE_PTR).await?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                Answer::Name(n) => Some(n),
                Answer::Addr(_) => None,
            })
            .collect())
    }

    /// The addresses `name` resolves to (A and AAAA).
    pub async fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let mut out = Vec::new();
        for t in [TYPE_A, TYPE_AAAA] {
            for a in self.query(name, t).await? {
                if let Answer::Addr(ip) = a {
                    out.push(ip);
                }
            }
        }
        Ok(out)
    }

    async fn query(&self, name: &str, qtype: u16) -> Result<Vec<Answer>, DnsError> {
        if self.servers.is_empty() {
            return Err(DnsError::NoServer);
        }
        let id: u16 = rand::random();
        let q = encode_query(id, name, qtype)?;
        let mut last = DnsError::NoServer;
        for server in &self.servers {
            let bind = if server.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let sock = UdpSocket::bind(bind)
                .await
                .map_err(|e| DnsError::Io(e.to_string()))?;
            sock.connect(server)
                .await
                .map_err(|e| DnsError::Io(e.to_string()))?;
            sock.send(&q)
                .await
                .map_err(|e| DnsError::Io(e.to_string()))?;
            let mut buf = vec![0u8; 4096];
            // Datagrams that are not our answer (another id) are skipped until the
            // timeout: a spoofer must guess the id and the port.
            let deadline = tokio::time::Instant::now() + self.timeout;
            loop {
                let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        last = DnsError::Io(e.to_string());
                        break;
                    }
                    Err(_) => {
                        last = DnsError::Timeout(server.to_string());
                        break;
                    }
                };
                match decode_response(&buf[..n], id, qtype) {
                    Ok(Some(a)) => return Ok(a),
                    Ok(None) => continue,
                    Err(e) => {
                        last = e;
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

/// `10.2.0.192.in-addr.arpa` / the nibbles of an IPv6 address under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Name(String),
    Addr(IpAddr),
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(512);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Malformed("a query label is empty or too long"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, DnsError> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or(DnsError::Malformed("truncated"))
}

/// The name at `at` (following compression pointers, bounded) and where it ends in
/// the message (after the first pointer, if any).
fn read_name(b: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *b.get(at).ok_or(DnsError::Malformed("name past the end"))? as usize;
        match len {
            0 => {
                return Ok((labels.join("."), end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let ptr = (u16_at(b, at)? & 0x3fff) as usize;
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > MAX_JUMPS || ptr >= b.len() {
                    return Err(DnsError::Malformed("bad name pointer"));
                }
                at = ptr;
            }
            l if l <= 63 => {
                let label = b
                    .get(at + 1..at + 1 + l)
                    .ok_or(DnsError::Malformed("label past the end"))?;
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                if labels.iter().map(|x| x.len() + 1).sum::<usize>() > 255 {
                    return Err(DnsError::Malformed("name longer than 255"));
                }
                at += 1 + l;
            }
            _ => return Err(DnsError::Malformed("reserved label type")),
        }
    }
}

/// The answers of type `qtype` in a response to query `id`; Ok(None) for a
/// datagram that answers something else.
fn decode_response(b: &[u8], id: u16, qtype: u16) -> Result<Option<Vec<Answer>>, DnsError> {
    if b.len() < 12 || u16_at(b, 0)? != id || b[2] & 0x80 == 0 {
        return Ok(None);
    }
    if b[2] & 0x02 != 0 {
        return Err(DnsError::Malformed("truncated (TC)"));
    }
    match b[3] & 0x0f {
        0 => {}
        3 => return Ok(Some(Vec::new())), // NXDOMAIN: no such name
        r => return Err(DnsError::Rcode(r)),
    }
    let (qd, an) = (u16_at(b, 4)?, u16_at(b, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(b, at)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let next = read_name(b, at)?.1;
        let (rtype, class) = (u16_at(b, next)?, u16_at(b, next + 2)?);
        let rdlen = u16_at(b, next + 8)? as usize;
        let rdata = next + 10;
        if b.len() < rdata + rdlen {
            return Err(DnsError::Malformed("record past the end"));
        }
        if class == CLASS_IN && rtype == qtype {
            match rtype {
                TYPE_A if rdlen == 4 => {
                    let o: [u8; 4] = b[rdata..rdata + 4]
                        .try_into()
                        .map_err(|_| DnsError::Malformed("A"))?;
                    out.push(Answer::Addr(IpAddr::from(o)));
                }
                TYPE_AAAA if rdlen == 16 => {
                    let o: [u8; 16] = b[rdata..rdata + 16]
                        .try_into()
                        .map_err(|_| DnsError::Malformed("AAAA"))?;
                    out.push(Answer::Addr(IpAddr::from(o)));
                }
                TYPE_PTR => out.push(Answer::Name(read_name(b, rdata)?.0)),
                _ => return Err(DnsError::Malformed("bad record length")),
            }
        }
        at = rdata + rdlen;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query` with `answers` (type, rdata), the name compressed to the
    /// question.
    fn response(query: &[u8], rcode: u8, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] |= 0x80;
        r[3] = rcode;
        r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, rd) in answers {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&CLASS_IN.to_be_bytes());
            r.extend_from_slice(&300u32.to_be_bytes());
            r.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            r.extend_from_slice(rd);
        }
        r
    }

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().expect("ip")),
            "10.2.0.192.in-addr.arpa"
        );
        assert!(
            reverse_name("2001:db8::1".parse().expect("ip")).starts_with(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
            )
        );
        assert_eq!(
            resolv_conf("# x\nnameserver 127.0.0.53\nnameserver bad\n"),
            ["127.0.0.53:53".parse().expect("addr")]
        );
    }

    #[test]
    fn answers_decode_and_hostile_responses_are_errors() {
        let q = encode_query(7, "10.2.0.192.in-addr.arpa", TYPE_PTR).expect("q");
        let r = response(&q, 0, &[(TYPE_PTR, name("Crawl-1.Googlebot.com"))]);
        assert_eq!(
            decode_response(&r, 7, TYPE_PTR),
            Ok(Some(vec![Answer::Name("crawl-1.googlebot.com".into())]))
        );
        assert_eq!(decode_response(&r, 8, TYPE_PTR), Ok(None), "another id");
        assert_eq!(
            decode_response(&response(&q, 3, &[]), 7, TYPE_PTR),
            Ok(Some(vec![])),
            "NXDOMAIN"
        );
        assert_eq!(
            decode_response(&response(&q, 2, &[]), 7, TYPE_PTR),
            Err(DnsError::Rcode(2))
        );
        let q = encode_query(9, "a.example", TYPE_A).expect("q");
        let r = response(&q, 0, &[(TYPE_A, vec![192, 0, 2, 1])]);
        assert_eq!(
            decode_response(&r, 9, TYPE_A),
            Ok(Some(vec![Answer::Addr("192.0.2.1".parse().expect("ip"))]))
        );
        // A pointer loop, a pointer past the end, a record past the end, truncation
        // at every length: errors, never a panic.
        let mut looped = response(&q, 0, &[(TYPE_PTR, vec![0xc0, 0])]);
        let at = looped.len() - 2;
        looped[at + 1] = at as u8;
        let _ = decode_response(&looped, 9, TYPE_PTR);
        let mut bad = r.clone();
        let len = bad.len();
        bad[len - 6] = 0xff;
        assert!(decode_response(&bad, 9, TYPE_A).is_err());
        for cut in 0..r.len() {
            let _ = decode_response(&r[..cut], 9, TYPE_A);
        }
        assert!(read_name(&[0xc0, 0], 0).is_err(), "a pointer to itself");
        assert!(encode_query(1, &"a".repeat(64), TYPE_A).is_err());
    }
}
