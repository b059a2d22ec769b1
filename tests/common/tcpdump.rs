//! tcpdump writing a pcap file of one port on `lo`, beside a test's traffic.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Tcpdump {
    child: Child,
    stderr: BufReader<ChildStderr>,
}

impl Tcpdump {
    /// Starts `tcpdump -i lo` for `tcp port PORT` into `pcap`, each packet written as it
    /// comes; returns once it listens.
    pub fn start(pcap: &Path, port: u16) -> Tcpdump {
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-U", "--immediate-mode", "-B", "65536", "-w"])
            .arg(pcap)
            .arg(format!("tcp port {port}"))
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "{line}");
        Tcpdump { child, stderr }
    }

    /// Waits `settle` (tcpdump hands packets over in blocks: the last one needs time to be
    /// written), stops it, and says whether it saw every packet, with its closing words.
    pub fn stop(mut self, settle: Duration) -> (bool, String) {
        std::thread::sleep(settle);
        terminate(&mut self.child);
        let mut said = String::new();
        self.stderr.read_to_string(&mut said).unwrap();
        (said.contains("\n0 packets dropped by kernel"), said)
    }
}

/// Sends SIGTERM to a child we spawned and waits for it.
pub fn terminate(child: &mut Child) -> ExitStatus {
    // SAFETY: plain system call on the child we spawned.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    child.wait().unwrap()
}
