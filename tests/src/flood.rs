// SPDX-License-Identifier: GPL-2.0-only
//! An AF_PACKET UDP flooder for drop-rate benchmarks: raw frames from the peer
//! namespace straight onto its veth (qdisc bypassed), in sendmmsg batches.

use std::time::{Duration, Instant};

use crate::NetPair;

/// MAC address of `iface` in namespace `ns`.
pub fn mac(ns: &str, iface: &str) -> [u8; 6] {
    let out = crate::sh("ip", &["-n", ns, "-j", "link", "show", iface]).expect("ip link");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    let s = v[0]["address"].as_str().expect("address");
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).expect("hex");
    }
    m
}

/// A minimal Ethernet/IPv4/UDP frame (checksum 0 is valid for UDP over IPv4).
pub fn frame(dst: [u8; 6], src: [u8; 6], sip: [u8; 4], dip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [
        0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, sip[0], sip[1], sip[2], sip[3], dip[0],
        dip[1], dip[2], dip[3],
    ];
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 26, 0, 0]);
    f.resize(14 + 46, 0);
    f
}

/// Send `frame` out of `iface` in `ns` as fast as possible for `dur`; returns frames sent.
pub fn flood(ns: &str, iface: &str, frame: Vec<u8>, dur: Duration) -> u64 {
    let iface = iface.to_string();
    NetPair::in_ns(ns, move || {
        const BATCH: usize = 64;
        // SAFETY: plain socket syscalls with valid arguments; buffers outlive the calls.
        unsafe {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let name = std::ffi::CString::new(iface).expect("iface");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            let rc = libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let mut iov = libc::iovec {
                iov_base: frame.as_ptr() as *mut _,
                iov_len: frame.len(),
            };
            let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
                .map(|_| {
                    let mut m: libc::mmsghdr = std::mem::zeroed();
                    m.msg_hdr.msg_iov = &mut iov;
                    m.msg_hdr.msg_iovlen = 1;
                    m
                })
                .collect();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < dur {
                let n = libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0);
                if n > 0 {
                    sent += n as u64;
                }
            }
            libc::close(fd);
            sent
        }
    })
}

/// A TAP device created inside namespace `ns`: frames written to it arrive as if from
/// a wire. The kernel runs native XDP on the written buffer before it builds an skb
/// (tun_build_skb), like a NIC driver, which veth cannot show.
pub struct Tap {
    fd: std::os::fd::OwnedFd,
    pub name: String,
}

impl Tap {
    pub fn create(ns: &str, name: &str) -> Self {
        let name = name.to_string();
        let n2 = name.clone();
        let fd = NetPair::in_ns(ns, move || {
            use std::os::fd::FromRawFd;
            // SAFETY: open + TUNSETIFF ioctl with a zeroed, filled ifreq.
            unsafe {
                let fd = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR);
                assert!(fd >= 0, "/dev/net/tun: {}", std::io::Error::last_os_error());
                let mut ifr: libc::ifreq = std::mem::zeroed();
                for (i, b) in n2.bytes().take(15).enumerate() {
                    ifr.ifr_name[i] = b as libc::c_char;
                }
                ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
                const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
                let rc = libc::ioctl(fd, TUNSETIFF, &mut ifr);
                assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
                std::os::fd::OwnedFd::from_raw_fd(fd)
            }
        });
        crate::sh(
            "ip",
            &["-n", ns, "addr", "add", "198.51.100.1/24", "dev", &name],
        )
        .expect("tap addr");
        crate::sh("ip", &["-n", ns, "link", "set", &name, "up"]).expect("tap up");
        Tap { fd, name }
    }

    /// MAC of the tap (frames must be addressed to it to reach the stack).
    pub fn mac(&self, ns: &str) -> [u8; 6] {
        mac(ns, &self.name)
    }

    /// Write `frame` as fast as possible for `dur`; returns frames written.
    pub fn flood(&self, frame: &[u8], dur: Duration) -> u64 {
        use std::os::fd::AsRawFd;
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < dur {
            for _ in 0..256 {
                // SAFETY: writing a valid buffer to our tap fd.
                if unsafe { libc::write(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) }
                    > 0
                {
                    sent += 1;
                }
            }
        }
        sent
    }
}
