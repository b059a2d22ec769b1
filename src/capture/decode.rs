//! Packets to TCP segments: the link layer (Ethernet, Linux cooked SLL and SLL2, raw IP,
//! BSD loopback) is peeled here, IPv4/IPv6 and TCP are parsed with etherparse.
//!
//! Lax parsing on purpose: a packet cut by the snaplen still yields its TCP header and
//! the payload bytes that were captured; the rest is reported as `missing`.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxSlicedPacket, TransportSlice};

/// A link-layer header type, as pcap numbers them (LINKTYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    LinuxSll,
    /// Linux cooked capture v2.
    LinuxSll2,
    /// Raw IPv4 or IPv6, no link header.
    RawIp,
    /// BSD loopback: a 4-byte address family in host (NULL) or network (LOOP) order.
    Loopback,
}

impl LinkType {
    /// The link type for a pcap LINKTYPE number, `None` when not supported.
    pub fn from_linktype(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::Ethernet,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            // LINKTYPE_RAW, the DLT_RAW values some systems write, IPV4, IPV6.
            101 | 12 | 14 | 228 | 229 => Self::RawIp,
            0 | 108 => Self::Loopback,
            _ => return None,
        })
    }
}

/// One TCP segment, borrowed from its packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes on the wire but cut off by the snaplen.
    pub missing: u32,
}

/// Why a packet carries no usable TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IPv4/IPv6 (ARP, LLDP…).
    NotIp,
    /// IP but not TCP (UDP, ICMP…).
    NotTcp,
    /// An IP fragment: TCP in fragments is not reassembled.
    Fragment,
    /// Headers are malformed or cut before the end of the TCP header.
    Malformed,
}

/// The TCP segment in `data`, a packet of link type `link` that was `orig_len` bytes long
/// on the wire.
///
/// # Errors
/// A [`Skip`] telling why the packet is not a usable TCP segment.
pub fn decode(link: LinkType, data: &[u8], orig_len: u32) -> Result<Segment<'_>, Skip> {
    let parsed = match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(data).map_err(|_| Skip::Malformed)?,
        LinkType::LinuxSll => {
            let (proto, rest) = split_proto(data, 16, 14)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), rest)
        }
        LinkType::LinuxSll2 => {
            let (proto, rest) = split_proto(data, 20, 0)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), rest)
        }
        LinkType::RawIp => ip(data)?,
        LinkType::Loopback => ip(data.get(4..).ok_or(Skip::Malformed)?)?,
    };
    let net = parsed.net.as_ref().ok_or(Skip::NotIp)?;
    let Some(ip_payload) = net.ip_payload_ref() else {
        return Err(Skip::NotIp);
    };
    if ip_payload.fragmented {
        return Err(Skip::Fragment);
    }
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match net {
        etherparse::LaxNetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        etherparse::LaxNetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return Err(Skip::NotIp),
    };
    let tcp = match &parsed.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        Some(_) => return Err(Skip::NotTcp),
        None if ip_payload.ip_number == etherparse::IpNumber::TCP => return Err(Skip::Malformed),
        None => return Err(Skip::NotTcp),
    };
    let missing = orig_len.saturating_sub(u32::try_from(data.len()).unwrap_or(u32::MAX));
    Ok(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        missing,
    })
}

fn ip(data: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    match data.first().map(|b| b >> 4) {
        Some(4 | 6) => LaxSlicedPacket::from_ip(data).map_err(|_| Skip::Malformed),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Malformed),
    }
}

/// Splits a cooked header of `len` bytes with the protocol (EtherType) at `at`.
fn split_proto(data: &[u8], len: usize, at: usize) -> Result<(u16, &[u8]), Skip> {
    let proto = data.get(at..at + 2).ok_or(Skip::Malformed)?;
    let rest = data.get(len..).ok_or(Skip::Malformed)?;
    Ok((u16::from_be_bytes([proto[0], proto[1]]), rest))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// An IPv4 or IPv6 TCP packet on Ethernet, for tests here and in the capture tests.
    pub(crate) fn tcp_packet(
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        flags: (bool, bool, bool),
        payload: &[u8],
    ) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let ip = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => panic!("mixed address families"),
        };
        let mut b = ip.tcp(src.port(), dst.port(), seq, 65535);
        let (syn, fin, rst) = flags;
        if syn {
            b = b.syn();
        }
        if fin {
            b = b.fin();
        }
        if rst {
            b = b.rst();
        }
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).unwrap();
        out
    }

    fn addrs(v6: bool) -> (SocketAddr, SocketAddr) {
        if v6 {
            ("[::1]:40000".parse().unwrap(), "[::1]:80".parse().unwrap())
        } else {
            (
                "127.0.0.1:40000".parse().unwrap(),
                "127.0.0.1:80".parse().unwrap(),
            )
        }
    }

    #[test]
    fn ethernet_v4_and_v6() {
        for v6 in [false, true] {
            let (c, s) = addrs(v6);
            let p = tcp_packet(c, s, 7, (false, true, false), b"hi");
            let seg = decode(LinkType::Ethernet, &p, p.len() as u32).unwrap();
            assert_eq!((seg.src, seg.dst, seg.seq, seg.fin), (c, s, 7, true));
            assert_eq!((seg.payload, seg.missing), (&b"hi"[..], 0));
        }
    }

    #[test]
    fn cooked_raw_and_loopback_links() {
        let (c, s) = addrs(false);
        let p = tcp_packet(c, s, 1, (true, false, false), b"");
        let ip = &p[14..];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        for (link, data) in [
            (LinkType::LinuxSll, &sll[..]),
            (LinkType::LinuxSll2, &sll2[..]),
            (LinkType::RawIp, ip),
            (LinkType::Loopback, &null[..]),
        ] {
            let seg = decode(link, data, data.len() as u32).unwrap();
            assert!(seg.syn, "{link:?}");
            assert_eq!(seg.dst, s);
        }
    }

    #[test]
    fn snaplen_cut_reports_missing_bytes() {
        let (c, s) = addrs(false);
        let p = tcp_packet(c, s, 1, (false, false, false), b"0123456789");
        let cut = &p[..p.len() - 4];
        let seg = decode(LinkType::Ethernet, cut, p.len() as u32).unwrap();
        assert_eq!((seg.payload, seg.missing), (&b"012345"[..], 4));
        assert_eq!(
            decode(LinkType::Ethernet, &p[..40], p.len() as u32),
            Err(Skip::Malformed)
        );
    }

    #[test]
    fn garbage_is_skipped_not_panicking() {
        for n in 0..80 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            for link in [
                LinkType::Ethernet,
                LinkType::LinuxSll,
                LinkType::LinuxSll2,
                LinkType::RawIp,
                LinkType::Loopback,
            ] {
                let _ = decode(link, &junk, n as u32);
            }
        }
        assert_eq!(decode(LinkType::RawIp, &[0x45], 1), Err(Skip::Malformed));
    }
}
