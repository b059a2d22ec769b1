//! Live capture with a Linux AF_PACKET socket: no C library, only system calls through
//! `libc`, kept in one small wrapper ([`PacketSocket`]) whose unsafe blocks each say why
//! they are sound.
//!
//! Packets come with kernel timestamps (SO_TIMESTAMPNS), so latency is measured where the
//! packet was seen, not when this process got round to reading it. On a loopback
//! interface the kernel shows each packet twice, outgoing and incoming; the outgoing copy
//! is dropped so each counts once.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::decode::LinkType;
use super::error::CaptureError;
use super::run::{Options, Report, Sink};
use super::Capture;

/// Largest packet read; bigger ones (GRO on loopback can reach 64 KiB) are cut and the
/// cut is counted like a snaplen.
const SNAPLEN: usize = 256 * 1024;
/// How often a blocked read wakes to check for Ctrl-C and the deadline; after a stop,
/// this long without a packet means the queue is empty.
const WAKE: Duration = Duration::from_millis(100);
/// `PACKET_IGNORE_OUTGOING` from linux/if_packet.h.
const PACKET_IGNORE_OUTGOING: i32 = 23;
/// Longest time spent reading what queued before a stop.
const DRAIN: Duration = Duration::from_secs(30);

/// Live capture settings besides [`Options`].
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print the counters to stderr this often.
    pub stats_every: Option<Duration>,
    /// Use libpcap instead of AF_PACKET (needs the `libpcap` cargo feature).
    pub libpcap: bool,
    /// libpcap only: the BPF filter (default: the captured TCP ports).
    pub bpf: Option<String>,
}

/// One packet read from the socket.
struct Received {
    len: usize,
    orig_len: usize,
    ts_ns: u64,
    outgoing: bool,
    link: Option<LinkType>,
}

/// An AF_PACKET socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    interface: String,
}

impl PacketSocket {
    /// Opens a raw packet socket on `interface`.
    ///
    /// # Errors
    /// The interface does not exist, or the process lacks CAP_NET_RAW.
    pub fn open(interface: &str) -> Result<Self, CaptureError> {
        let err = |what, source| CaptureError::Live {
            interface: interface.to_owned(),
            what,
            source,
        };
        let name = CString::new(interface)
            .map_err(|_| err("bad name", io::Error::from(io::ErrorKind::InvalidInput)))?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(err("no such interface", io::Error::last_os_error()));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain system call with constant arguments; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(err(
                "cannot open a packet socket (run as root or grant CAP_NET_RAW)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = Self {
            fd,
            interface: interface.to_owned(),
        };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = i32::try_from(index).unwrap_or(0);
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err("cannot bind", io::Error::last_os_error()));
        }
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: WAKE.as_micros() as libc::suseconds_t,
        };
        sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)
            .map_err(|e| err("cannot set a read timeout", e))?;
        sock.setsockopt(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)
            .map_err(|e| err("cannot enable timestamps", e))?;
        // A large receive buffer rides out bursts; FORCE needs CAP_NET_ADMIN, so fall back.
        let size: i32 = 64 << 20;
        if sock
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size)
            .is_err()
        {
            let _ = sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &size);
        }
        // On loopback every packet passes twice; ask the kernel not to hand over the
        // outgoing copy (Linux 4.20+). Where it cannot, `recv` still skips it.
        let loopback = std::fs::read_to_string(format!("/sys/class/net/{interface}/type"))
            .is_ok_and(|t| t.trim() == libc::ARPHRD_LOOPBACK.to_string());
        if loopback {
            let _ = sock.setsockopt(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1i32);
        }
        // Drop what queued before the bind completed, then reset the drop counter.
        let _ = sock.kernel_drops();
        Ok(sock)
    }

    fn setsockopt<T>(&self, level: i32, name: i32, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to a live T and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Packets the kernel dropped since the last call (the counter resets on read).
    pub fn kernel_drops(&self) -> u64 {
        // SAFETY: tpacket_stats is plain old data; all-zero is valid.
        let mut stats: libc::tpacket_stats = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if rc < 0 {
            0
        } else {
            u64::from(stats.tp_drops)
        }
    }

    /// Reads one packet into `buf`; `Ok(None)` when the read timed out or was interrupted.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        // SAFETY: all-zero is valid for these plain-old-data structs.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        let mut control = [MaybeUninit::<u64>::uninit(); 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: every pointer in `msg` refers to a live buffer of the length given;
        // MSG_TRUNC makes the kernel return the full length even when `buf` is shorter.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let orig_len = usize::try_from(n).unwrap_or(0);
        let mut ts_ns = None;
        // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of cmsgs;
        // the CMSG_* macros walk them within those bounds.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    ts_ns = Some(
                        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
                            + u64::try_from(ts.tv_nsec).unwrap_or(0),
                    );
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
        }
        let ts_ns = ts_ns.unwrap_or_else(now_ns);
        let link = match addr.sll_hatype {
            libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Some(LinkType::Ethernet),
            libc::ARPHRD_NONE | libc::ARPHRD_TUNNEL | libc::ARPHRD_TUNNEL6 => Some(LinkType::RawIp),
            _ => None,
        };
        Ok(Some(Received {
            len: orig_len.min(buf.len()),
            orig_len,
            ts_ns,
            // On loopback every packet shows up twice; keep the incoming copy.
            outgoing: addr.sll_pkttype == libc::PACKET_OUTGOING
                && addr.sll_hatype == libc::ARPHRD_LOOPBACK,
            link,
        }))
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One packet handed over by an engine.
pub(crate) struct LivePacket<'a> {
    pub link: LinkType,
    pub ts_ns: u64,
    pub data: &'a [u8],
    pub orig_len: u32,
}

/// A live packet engine: AF_PACKET here, libpcap behind its feature.
pub(crate) trait Engine {
    /// The next packet of interest; `Ok(None)` when none came within a short wait.
    fn next_packet(&mut self) -> Result<Option<LivePacket<'_>>, CaptureError>;
    /// Packets the kernel dropped since the last call.
    fn kernel_drops(&mut self) -> u64;
}

/// The AF_PACKET engine: the socket and its read buffer.
struct AfPacket {
    sock: PacketSocket,
    buf: Vec<u8>,
    /// Packets of link types that cannot be decoded, skipped.
    unknown_link: u64,
}

impl Engine for AfPacket {
    fn next_packet(&mut self) -> Result<Option<LivePacket<'_>>, CaptureError> {
        // Skipped packets do not end the wait: only a timeout does.
        loop {
            let got = self
                .sock
                .recv(&mut self.buf)
                .map_err(|source| CaptureError::Live {
                    interface: self.sock.interface.clone(),
                    what: "read failed",
                    source,
                })?;
            let Some(p) = got else { return Ok(None) };
            if p.outgoing {
                continue;
            }
            let Some(link) = p.link else {
                self.unknown_link += 1;
                continue;
            };
            return Ok(Some(LivePacket {
                link,
                ts_ns: p.ts_ns,
                data: self.buf.get(..p.len).unwrap_or_default(),
                orig_len: u32::try_from(p.orig_len).unwrap_or(u32::MAX),
            }));
        }
    }

    fn kernel_drops(&mut self) -> u64 {
        self.sock.kernel_drops()
    }
}

/// Captures live until `stop` is set, the duration passes or `--max-exchanges` is reached,
/// then flushes every pending exchange and closes the recording.
///
/// # Errors
/// The engine cannot start (interface, permissions, engine not built in), a read fails,
/// or the recording cannot be written.
pub fn run(live: &LiveOptions, opts: &Options, stop: &AtomicBool) -> Result<Report, CaptureError> {
    let mut sink = Sink::create(opts)?;
    let mut cap = Capture::new(opts.ports.clone(), opts.limits.clone());
    with_engine(live, &opts.ports, &mut cap, |engine, cap| {
        pump(engine, live, cap, stop, |cap| {
            sink.drain(cap)?;
            Ok(sink.is_full())
        })
    })?;
    sink.finish(cap, None)
}

/// Captures live like [`run`], but hands every exchange to `each` as soon as it is complete
/// instead of writing a recording (the passive mirror). Returns the counters at the end.
///
/// # Errors
/// The engine cannot start, or a read fails.
pub fn watch(
    live: &LiveOptions,
    ports: &[u16],
    limits: super::Limits,
    stop: &AtomicBool,
    mut each: impl FnMut(super::CapturedExchange),
) -> Result<super::CaptureStats, CaptureError> {
    let mut cap = Capture::new(ports.to_vec(), limits);
    with_engine(live, ports, &mut cap, |engine, cap| {
        pump(engine, live, cap, stop, |cap| {
            cap.take_exchanges().into_iter().for_each(&mut each);
            Ok(false)
        })
    })?;
    cap.finish();
    cap.take_exchanges().into_iter().for_each(&mut each);
    Ok(cap.stats().clone())
}

/// Opens the engine `live` asks for and runs `body` with it.
fn with_engine(
    live: &LiveOptions,
    ports: &[u16],
    cap: &mut Capture,
    body: impl FnOnce(&mut dyn Engine, &mut Capture) -> Result<(), CaptureError>,
) -> Result<(), CaptureError> {
    if live.libpcap {
        #[cfg(feature = "libpcap")]
        {
            let mut engine = super::libpcap::Libpcap::open(live, ports)?;
            started(live, ports);
            return body(&mut engine, cap);
        }
        #[cfg(not(feature = "libpcap"))]
        return Err(CaptureError::Live {
            interface: live.interface.clone(),
            what: "the libpcap engine is not built in (rebuild with --features libpcap)",
            source: io::Error::from(io::ErrorKind::Unsupported),
        });
    }
    let mut engine = AfPacket {
        sock: PacketSocket::open(&live.interface)?,
        buf: vec![0u8; SNAPLEN],
        unknown_link: 0,
    };
    started(live, ports);
    let result = body(&mut engine, cap);
    cap.stats_mut().not_ip += engine.unknown_link;
    result
}

/// Tests and scripts wait for this line: from here on every packet is seen.
fn started(live: &LiveOptions, ports: &[u16]) {
    eprintln!("capturing on {} for ports {ports:?}", live.interface);
}

/// The capture loop over any engine: packets into `cap` until stopped; after each packet
/// `deliver` takes what finished and says whether to stop (the output is full).
fn pump(
    engine: &mut dyn Engine,
    live: &LiveOptions,
    cap: &mut Capture,
    stop: &AtomicBool,
    mut deliver: impl FnMut(&mut Capture) -> Result<bool, CaptureError>,
) -> Result<(), CaptureError> {
    let started = Instant::now();
    let mut next_stats = live.stats_every.map(|d| started + d);
    // After a stop, what already sits in the queue was on the wire before the stop: read
    // it until the queue is empty, for at most DRAIN.
    let mut draining: Option<Instant> = None;
    // Kernel timestamps share this clock: a packet stamped after the stop is not drained.
    let mut stop_ns = u64::MAX;
    let mut last_packet = Instant::now();
    loop {
        let now = Instant::now();
        match draining {
            None => {
                let timed_out = live
                    .duration
                    .is_some_and(|d| now.duration_since(started) >= d);
                if stop.load(Ordering::Relaxed) || timed_out {
                    draining = Some(now + DRAIN);
                    stop_ns = now_ns();
                }
            }
            Some(deadline) if now >= deadline => break,
            Some(_) => {}
        }
        if let (Some(at), Some(every)) = (next_stats, live.stats_every) {
            if now >= at {
                cap.stats_mut().kernel_drops += engine.kernel_drops();
                eprint!("{}", cap.stats());
                next_stats = Some(at + every);
            }
        }
        let Some(p) = engine.next_packet()? else {
            if draining.is_some() && last_packet.elapsed() >= WAKE {
                break;
            }
            continue;
        };
        last_packet = Instant::now();
        if p.ts_ns > stop_ns {
            break;
        }
        cap.packet(p.link, p.ts_ns, p.data, p.orig_len);
        if deliver(cap)? {
            break;
        }
    }
    cap.stats_mut().kernel_drops += engine.kernel_drops();
    Ok(())
}
