//! The libpcap engine (cargo feature `libpcap`): for systems where AF_PACKET is not
//! wanted, and for a kernel-side BPF filter on busy interfaces.

use super::decode::LinkType;
use super::error::CaptureError;
use super::live::{Engine, LiveOptions, LivePacket};

/// A libpcap capture on one interface, filtered to the captured ports.
pub struct Libpcap {
    cap: pcap::Capture<pcap::Active>,
    /// The descriptor to wait on: reads are non-blocking so Ctrl-C is seen in time.
    fd: i32,
    link: LinkType,
    interface: String,
    dropped: u64,
}

fn err(interface: &str, what: &'static str, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Live {
        interface: interface.to_owned(),
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

/// The BPF filter for `ports`, unless the user gave one.
pub fn default_filter(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| format!("tcp port {p}")).collect();
    ports.join(" or ")
}

impl Libpcap {
    /// Opens `live.interface` with the filter `live.bpf` or one built from `ports`.
    ///
    /// # Errors
    /// libpcap cannot open the interface, its link type is not supported, or the filter
    /// does not compile.
    pub fn open(live: &LiveOptions, ports: &[u16]) -> Result<Self, CaptureError> {
        let name = live.interface.as_str();
        let mut cap = pcap::Capture::from_device(name)
            .map_err(|e| err(name, "no such device", e))?
            .snaplen(262_144)
            .immediate_mode(true)
            .timeout(100)
            .buffer_size(64 << 20)
            .open()
            .map_err(|e| err(name, "cannot open (run as root or grant CAP_NET_RAW)", e))?;
        let linktype = cap.get_datalink().0;
        let link = u32::try_from(linktype)
            .ok()
            .and_then(LinkType::from_linktype)
            .ok_or_else(|| err(name, "unsupported link type", linktype))?;
        let filter = live.bpf.clone().unwrap_or_else(|| default_filter(ports));
        cap.filter(&filter, true)
            .map_err(|e| err(name, "bad BPF filter", e))?;
        // On loopback each packet passes twice; the incoming copy is enough.
        if name == "lo" {
            let _ = cap.direction(pcap::Direction::In);
        }
        // libpcap's read timeout is not honoured in immediate mode: wait with poll instead.
        let cap = cap
            .setnonblock()
            .map_err(|e| err(name, "cannot make non-blocking", e))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&cap);
        Ok(Self {
            cap,
            fd,
            link,
            interface: name.to_owned(),
            dropped: 0,
        })
    }
}

impl Engine for Libpcap {
    fn next_packet(&mut self) -> Result<Option<LivePacket<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let ts_ns = u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
                    + u64::try_from(ts.tv_usec).unwrap_or(0) * 1_000;
                Ok(Some(LivePacket {
                    link: self.link,
                    ts_ns,
                    data: p.data,
                    orig_len: p.header.len,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                let mut pfd = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: `pfd` is one valid pollfd for the duration of the call.
                unsafe { libc::poll(&raw mut pfd, 1, 100) };
                Ok(None)
            }
            Err(e) => Err(err(&self.interface, "read failed", e)),
        }
    }

    fn kernel_drops(&mut self) -> u64 {
        let total = self
            .cap
            .stats()
            .map_or(self.dropped, |s| u64::from(s.dropped));
        let new = total.saturating_sub(self.dropped);
        self.dropped = total;
        new
    }
}
