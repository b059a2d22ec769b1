//! Packets from pcap and pcapng files (the pcap-file crate parses records; this module
//! streams the file through a bounded buffer and keeps the byte offset for errors).
//!
//! A file cut in its last record (a tcpdump that was killed) is read up to the cut and the
//! cut is reported; a record that is malformed in the middle of a file is an error.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapParser};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{PcapError, TsResolution};

use super::decode::LinkType;
use super::error::CaptureError;

/// Bytes read from the file at a time.
const CHUNK: usize = 1 << 20;
/// A record longer than this is corrupt (snaplens top out at 256 KiB).
const MAX_RECORD: usize = 16 << 20;

/// What reading a file found besides packets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileStats {
    pub format: &'static str,
    /// Packet records read.
    pub records: u64,
    /// pcapng blocks of types this reader does not know, skipped.
    pub unknown_blocks: u64,
    /// Packets on interfaces whose link type is not supported, skipped.
    pub unsupported_link_packets: u64,
    /// The file ends inside a record at this offset (the record is skipped).
    pub truncated_at: Option<u64>,
}

/// A packet as the file holds it.
#[derive(Debug)]
pub struct FilePacket<'a> {
    pub link: LinkType,
    pub ts_ns: u64,
    pub data: &'a [u8],
    pub orig_len: u32,
}

/// Streams a file through a buffer that holds at most a chunk plus one record.
struct Buffer {
    file: Box<dyn Read>,
    name: String,
    buf: Vec<u8>,
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl Buffer {
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Reads more; `false` at end of file.
    fn fill(&mut self) -> Result<bool, CaptureError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        if self.buf.len() > MAX_RECORD {
            return Err(CaptureError::Corrupt {
                file: self.name.clone(),
                offset: self.base,
                reason: format!("record longer than {MAX_RECORD} bytes"),
            });
        }
        let old = self.buf.len();
        let n = loop {
            match (&mut self.file)
                .take(CHUNK as u64)
                .read_to_end(&mut self.buf)
            {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.buf.truncate(old);
                }
                Err(source) => {
                    return Err(CaptureError::Read {
                        file: self.name.clone(),
                        offset: self.base + old as u64,
                        source,
                    })
                }
            }
        };
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn corrupt(&self, e: &PcapError) -> CaptureError {
        CaptureError::Corrupt {
            file: self.name.clone(),
            offset: self.offset(),
            reason: e.to_string(),
        }
    }
}

/// Reads every packet of the pcap or pcapng file at `path`, in file order, and hands it
/// to `on_packet`, whose error stops the reading.
///
/// # Errors
/// The file cannot be opened or read, is neither pcap nor pcapng, is corrupt before its
/// last record, or uses an unsupported link type (pcap); or `on_packet` failed.
pub fn read_file(
    path: &Path,
    on_packet: impl FnMut(FilePacket<'_>) -> Result<(), CaptureError>,
) -> Result<FileStats, CaptureError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| CaptureError::Open {
        file: name.clone(),
        source,
    })?;
    read_from(file, name, on_packet)
}

/// Like [`read_file`], from any byte source; `name` is used in errors.
///
/// # Errors
/// As [`read_file`], less opening.
pub fn read_from(
    input: impl Read + 'static,
    name: String,
    mut on_packet: impl FnMut(FilePacket<'_>) -> Result<(), CaptureError>,
) -> Result<FileStats, CaptureError> {
    let mut b = Buffer {
        file: Box::new(input),
        name,
        buf: Vec::with_capacity(CHUNK),
        pos: 0,
        base: 0,
        eof: false,
    };
    while b.buf.len() < 4 && b.fill()? {}
    let magic = b.rest().get(..4).map(<[u8]>::to_vec).unwrap_or_default();
    match magic.as_slice() {
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(&mut b, &mut on_packet),
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1] => read_pcap(&mut b, &mut on_packet),
        _ => Err(CaptureError::BadMagic {
            file: b.name.clone(),
            magic: magic.iter().map(|x| format!("{x:02x}")).collect(),
        }),
    }
}

/// Runs `parse` on the buffer, reading more while it needs more. `Ok(None)` at the end of
/// the file; a cut record at the end is recorded in `stats`.
fn next<T>(
    b: &mut Buffer,
    stats: &mut FileStats,
    mut parse: impl FnMut(&[u8]) -> Result<(usize, T), PcapError>,
) -> Result<Option<T>, CaptureError> {
    loop {
        if b.rest().is_empty() && !b.fill()? {
            return Ok(None);
        }
        match parse(b.rest()) {
            Ok((used, value)) => {
                b.pos += used;
                return Ok(Some(value));
            }
            Err(PcapError::IncompleteBuffer) => {
                if !b.fill()? {
                    stats.truncated_at = Some(b.offset());
                    b.pos = b.buf.len();
                    return Ok(None);
                }
            }
            Err(e) => return Err(b.corrupt(&e)),
        }
    }
}

fn read_pcap(
    b: &mut Buffer,
    on_packet: &mut impl FnMut(FilePacket<'_>) -> Result<(), CaptureError>,
) -> Result<FileStats, CaptureError> {
    let mut stats = FileStats {
        format: "pcap",
        ..FileStats::default()
    };
    let parser = next(b, &mut stats, |s| {
        PcapParser::new(s).map(|(rest, p)| (s.len() - rest.len(), p))
    })?;
    let Some(parser) = parser else {
        return Err(CaptureError::Corrupt {
            file: b.name.clone(),
            offset: 0,
            reason: "the file ends inside the pcap header".into(),
        });
    };
    let header: PcapHeader = parser.header();
    let linktype = u32::from(header.datalink);
    let link = LinkType::from_linktype(linktype).ok_or_else(|| CaptureError::UnsupportedLink {
        file: b.name.clone(),
        offset: 20,
        linktype,
    })?;
    let big = matches!(header.endianness, pcap_file::Endianness::Big);
    // A record longer than any snaplen is corruption, not a file cut short.
    let max_len = header.snaplen.max(262_144);
    let frac_ns = match header.ts_resolution {
        TsResolution::MicroSecond => 1_000,
        TsResolution::NanoSecond => 1,
    };
    loop {
        // Parse the record header only, then borrow the data from the buffer.
        let record = next(b, &mut stats, |s| {
            if let Some(len) = s.get(8..12).and_then(|l| <[u8; 4]>::try_from(l).ok()) {
                let len = if big {
                    u32::from_be_bytes(len)
                } else {
                    u32::from_le_bytes(len)
                };
                if len > max_len {
                    return Err(PcapError::InvalidField(
                        "record length larger than the snaplen",
                    ));
                }
            }
            parser.next_raw_packet(s).map(|(rest, p)| {
                (
                    s.len() - rest.len(),
                    (p.ts_sec, p.ts_frac, p.orig_len, p.data.len()),
                )
            })
        })?;
        let Some((sec, frac, orig_len, len)) = record else {
            break;
        };
        stats.records += 1;
        let data = b.buf.get(b.pos - len..b.pos).unwrap_or_default();
        let ts_ns = u64::from(sec) * 1_000_000_000 + u64::from(frac) * frac_ns;
        on_packet(FilePacket {
            link,
            ts_ns,
            data,
            orig_len,
        })?;
    }
    Ok(stats)
}

/// Nanoseconds per timestamp unit for an `if_tsresol` option value.
fn unit_ns(tsresol: Option<u8>) -> f64 {
    match tsresol {
        None => 1_000.0,
        Some(v) if v & 0x80 == 0 => 1e9 / 10f64.powi(i32::from(v)),
        Some(v) => 1e9 / 2f64.powi(i32::from(v & 0x7f)),
    }
}

fn read_pcapng(
    b: &mut Buffer,
    on_packet: &mut impl FnMut(FilePacket<'_>) -> Result<(), CaptureError>,
) -> Result<FileStats, CaptureError> {
    let mut stats = FileStats {
        format: "pcapng",
        ..FileStats::default()
    };
    let parser = next(b, &mut stats, |s| {
        PcapNgParser::new(s).map(|(rest, p)| (s.len() - rest.len(), p))
    })?;
    let Some(mut parser) = parser else {
        return Err(CaptureError::Corrupt {
            file: b.name.clone(),
            offset: 0,
            reason: "the file ends inside the section header".into(),
        });
    };
    // Per interface: link type (None when unsupported) and ns per timestamp unit.
    let mut interfaces: Vec<(Option<LinkType>, f64)> = Vec::new();
    let mut last_ts = 0u64;
    loop {
        let start = b.offset();
        let big = matches!(parser.section().endianness, pcap_file::Endianness::Big);
        let block = next(b, &mut stats, |s| {
            check_block_length(s, big)?;
            parser
                .next_block(s)
                .map(|(rest, block)| (s.len() - rest.len(), Info::of(block)))
        })?;
        let Some(info) = block else {
            break;
        };
        match info {
            Info::Section => interfaces.clear(),
            Info::Interface(linktype, tsresol) => {
                interfaces.push((LinkType::from_linktype(linktype), unit_ns(tsresol)));
            }
            Info::Unknown => stats.unknown_blocks += 1,
            Info::Other => {}
            Info::Packet {
                interface,
                units,
                orig_len,
                len,
            } => {
                stats.records += 1;
                let Some(&(link, unit)) = usize::try_from(interface)
                    .ok()
                    .and_then(|i| interfaces.get(i))
                else {
                    return Err(CaptureError::Corrupt {
                        file: b.name.clone(),
                        offset: start,
                        reason: format!("packet on interface {interface}, which was not described"),
                    });
                };
                let Some(link) = link else {
                    stats.unsupported_link_packets += 1;
                    continue;
                };
                if let Some(units) = units {
                    last_ts = (units as f64 * unit) as u64;
                }
                // The packet data ends 4 bytes before the block end (total length
                // trailer), padded to 4 bytes, after any options: find it from the block
                // start instead, at its fixed header size.
                let header = match units {
                    None => 12,
                    Some(_) => 28,
                };
                let from = usize::try_from(start - b.base)
                    .unwrap_or(usize::MAX)
                    .saturating_add(header);
                let data = b
                    .buf
                    .get(from..from.saturating_add(len))
                    .unwrap_or_default();
                on_packet(FilePacket {
                    link,
                    ts_ns: last_ts,
                    data,
                    orig_len,
                })?;
            }
        }
    }
    Ok(stats)
}

/// Refuses a block whose length field (bytes 4..8 of its header) is beyond [`MAX_RECORD`]
/// before the parser waits for that much data.
fn check_block_length(s: &[u8], big_endian: bool) -> Result<(), PcapError> {
    if let Some(len) = s.get(4..8).and_then(|l| <[u8; 4]>::try_from(l).ok()) {
        let len = if big_endian {
            u32::from_be_bytes(len)
        } else {
            u32::from_le_bytes(len)
        };
        if len as usize > MAX_RECORD {
            return Err(PcapError::InvalidField("block length larger than 16 MiB"));
        }
    }
    Ok(())
}

/// What the reader needs of a pcapng block, copied out so that the buffer can move on.
enum Info {
    Section,
    Interface(u32, Option<u8>),
    Packet {
        interface: u32,
        units: Option<u64>,
        orig_len: u32,
        len: usize,
    },
    Unknown,
    Other,
}

impl Info {
    fn of(block: Block<'_>) -> Info {
        match block {
            Block::InterfaceDescription(idb) => {
                let tsresol = idb.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfTsResol(v) => Some(*v),
                    _ => None,
                });
                Info::Interface(u32::from(idb.linktype), tsresol)
            }
            Block::SectionHeader(_) => Info::Section,
            Block::EnhancedPacket(epb) => Info::Packet {
                interface: epb.interface_id,
                units: Some(u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX)),
                orig_len: epb.original_len,
                len: epb.data.len(),
            },
            Block::SimplePacket(spb) => Info::Packet {
                interface: 0,
                units: None,
                orig_len: spb.original_len,
                len: spb.data.len(),
            },
            Block::Packet(pb) => Info::Packet {
                interface: u32::from(pb.interface_id),
                units: Some(pb.timestamp),
                orig_len: pb.original_len,
                len: pb.data.len(),
            },
            Block::Unknown(_) => Info::Unknown,
            _ => Info::Other,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::capture::decode::tests::tcp_packet;

    /// A little-endian microsecond pcap of Ethernet packets.
    pub(crate) fn pcap_bytes(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&262_144u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (ts_ns, p) in packets {
            out.extend_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((ts_ns % 1_000_000_000 / 1_000) as u32).to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend(std::iter::repeat_n(0, pad));
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    /// A pcapng with one Ethernet interface at nanosecond resolution, an unknown block,
    /// and the packets as enhanced packet blocks.
    pub(crate) fn pcapng_bytes(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut out = block(0x0a0d_0d0a, &shb);
        let mut idb = 1u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        // if_tsresol = 9 (ns), then opt_endofopt.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&[0; 4]);
        out.extend(block(1, &idb));
        out.extend(block(0x0bad_f00d, b"something new"));
        for (ts, p) in packets {
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*ts as u32).to_le_bytes());
            epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(p.len() as u32).to_le_bytes());
            epb.extend_from_slice(p);
            out.extend(block(6, &epb));
        }
        out
    }

    fn packets() -> Vec<(u64, Vec<u8>)> {
        let c = "127.0.0.1:40000".parse().unwrap();
        let s = "127.0.0.1:80".parse().unwrap();
        vec![
            (
                1_500_000_000,
                tcp_packet(c, s, 1, (false, false, false), b"GET / HTTP/1.1\r\n\r\n"),
            ),
            (
                1_500_002_000,
                tcp_packet(
                    s,
                    c,
                    9,
                    (false, false, false),
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                ),
            ),
        ]
    }

    fn read(bytes: &[u8]) -> (Result<FileStats, CaptureError>, Vec<(u64, usize)>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        std::fs::write(&path, bytes).unwrap();
        let mut seen = Vec::new();
        let r = read_file(&path, |p| {
            seen.push((p.ts_ns, p.data.len()));
            Ok(())
        });
        (r, seen)
    }

    #[test]
    fn pcap_and_pcapng_give_the_same_packets() {
        let want: Vec<(u64, usize)> = packets().iter().map(|(t, p)| (*t, p.len())).collect();
        let (r, seen) = read(&pcap_bytes(&packets()));
        assert_eq!(r.unwrap().records, 2);
        assert_eq!(seen, want);
        let (r, seen) = read(&pcapng_bytes(&packets()));
        let stats = r.unwrap();
        assert_eq!(
            (stats.format, stats.records, stats.unknown_blocks),
            ("pcapng", 2, 1)
        );
        assert_eq!(seen, want);
    }

    #[test]
    fn bad_files_are_errors_with_offsets_or_counted() {
        let (r, _) = read(b"GIF89a not a capture");
        let e = r.unwrap_err().to_string();
        assert!(e.contains("x.pcap") && e.contains("magic 47494638"), "{e}");

        let good = pcap_bytes(&packets());
        let (r, seen) = read(&good[..good.len() - 5]);
        assert_eq!(
            r.unwrap().truncated_at,
            Some(24 + 16 + packets()[0].1.len() as u64)
        );
        assert_eq!(seen.len(), 1);

        let (r, _) = read(&good[..10]);
        assert!(r.unwrap_err().to_string().contains("at byte 0"));

        let mut odd_link = good.clone();
        odd_link[20] = 147;
        let e = read(&odd_link).0.unwrap_err().to_string();
        assert!(e.contains("link type 147"), "{e}");

        // A pcapng block whose trailer length disagrees with its header.
        let mut ng = pcapng_bytes(&packets());
        let n = ng.len();
        ng[n - 4] ^= 0x40;
        let e = read(&ng).0.unwrap_err().to_string();
        assert!(e.contains("corrupt capture at byte"), "{e}");
    }

    #[test]
    fn mangled_files_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        for base in [pcap_bytes(&packets()), pcapng_bytes(&packets())] {
            for _ in 0..300 {
                let mut b = base.clone();
                for _ in 0..rng.usize(1..6) {
                    let i = rng.usize(..b.len());
                    b[i] = rng.u8(..);
                }
                b.truncate(rng.usize(..=b.len()));
                let _ = read(&b);
            }
        }
    }
}
