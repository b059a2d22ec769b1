//! Shared set-up for the integration tests: the real `nprt` binary, testbeds on port 0.
#![allow(dead_code)] // each test file uses its own subset

pub mod grpc;
pub mod live;
pub mod nghttpd;
pub mod prometheus;
pub mod tcpdump;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `nprt` binary cargo built for these tests.
pub fn nprt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nprt"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs `nprt` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    nprt().args(args).output().expect("the nprt binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The real GoReplay recording (a copy of the workplace's `shared/fixtures`, so a clone runs alone).
pub fn goreplay_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/goreplay/recorded-8002-keepalive_0.gor")
}

/// The bundled demo recording.
pub fn demo_recording() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("replay/demo.gor")
}

/// An `nprt testbed` process on a free loopback port; killed when dropped.
pub struct Testbed {
    child: Child,
    pub url: String,
}

impl Testbed {
    pub fn start(extra: &[&str]) -> Testbed {
        let mut child = nprt()
            .args(["testbed", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nprt testbed starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("testbed prints its address");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127.0.0.1:") || u.starts_with("https://127.0.0.1:"))
            .unwrap_or_else(|| panic!("unexpected testbed banner: {line:?}"))
            .to_owned();
        Testbed { child, url }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback URL where nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Serialises the tests of one test binary that take it: latency measured on a 2-core machine
/// is only meaningful when the test's own siblings are not loading the CPU at the same time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a test that needs `what` (root, a server binary, a browser) can run: when it
/// cannot, it is skipped with a printed reason on a developer's machine, and fails in CI
/// (`CI=true`), where `.ci/run` must have installed it.
pub fn available(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required in CI but missing: .ci/run must install it");
    }
    eprintln!("skipped: {what} is not available on this machine");
    false
}

/// Writes ca.pem, cert.pem and key.pem for 127.0.0.1 into `dir`: a CA made here and a
/// leaf it signed.
pub fn make_certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
}

/// A little-endian microsecond pcap of Ethernet frames, 1 ms apart.
pub fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000 + i as u32 / 1000).to_le_bytes());
        out.extend_from_slice(&((i as u32 % 1000) * 1000).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// One TCP connection from client port `port` to the server at 127.0.0.2:18080.
pub struct TcpConn {
    port: u16,
    cseq: u32,
    sseq: u32,
}

impl TcpConn {
    pub fn open(port: u16, packets: &mut Vec<Vec<u8>>) -> TcpConn {
        let mut c = TcpConn {
            port,
            cseq: 1000,
            sseq: 9000,
        };
        packets.push(c.packet(true, true, b""));
        packets.push(c.packet(false, true, b""));
        c.cseq += 1;
        c.sseq += 1;
        c
    }

    fn packet(&self, from_client: bool, syn: bool, payload: &[u8]) -> Vec<u8> {
        let (client, server) = ([127, 0, 0, 1], [127, 0, 0, 2]);
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]);
        let b = if from_client {
            b.ipv4(client, server, 64)
                .tcp(self.port, 18080, self.cseq, 65535)
        } else {
            b.ipv4(server, client, 64)
                .tcp(18080, self.port, self.sseq, 65535)
        };
        let b = if syn { b.syn() } else { b };
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    pub fn send(&mut self, from_client: bool, payload: &[u8], packets: &mut Vec<Vec<u8>>) {
        // At most 1400 bytes a segment, as on a real link.
        for piece in payload.chunks(1400) {
            packets.push(self.packet(from_client, false, piece));
            if from_client {
                self.cseq += piece.len() as u32;
            } else {
                self.sseq += piece.len() as u32;
            }
        }
    }
}

/// Runs `nprt capture` on the pcap file `input` for server port 18080 into `out`.
pub fn capture_pcap(input: &Path, out: &Path, extra: &[&str]) -> Output {
    capture_pcap_port(input, 18080, out, extra)
}

/// Runs `nprt capture` on the pcap file `input` for server port `port` into `out`.
pub fn capture_pcap_port(input: &Path, port: u16, out: &Path, extra: &[&str]) -> Output {
    let port = port.to_string();
    let mut args = vec![
        "capture",
        "--pcap",
        input.to_str().unwrap(),
        "--port",
        &port,
    ];
    args.extend(["--output", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(&args)
}

/// An `nprt shadow` process; stopped with SIGTERM by [`Shadow::stop`], killed when dropped.
pub struct Shadow {
    child: Child,
    pub url: String,
    pub metrics: Option<String>,
}

impl Shadow {
    pub fn start(primary: &str, shadow: &str, extra: &[&str]) -> Shadow {
        let mut child = nprt()
            .args(["shadow", "--listen", "127.0.0.1:0", "--primary", primary])
            .args(["--shadow", shadow])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nprt shadow starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut metrics = None;
        let url = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("nprt shadow ended before listening: {err}");
            }
            let url = line.trim().rsplit(' ').next().unwrap().to_owned();
            if line.starts_with("nprt metrics on") {
                metrics = Some(url.trim_end_matches("/metrics").to_owned());
            } else if line.starts_with("nprt shadow listening on") {
                break url;
            }
        };
        // The rest of stdout (the final report) is read by `stop`.
        child.stdout = Some(reader.into_inner());
        Shadow {
            child,
            url,
            metrics,
        }
    }

    /// SIGTERM, then the exit code, stdout and stderr.
    pub fn stop(mut self) -> (i32, String, String) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let mut out = String::new();
        let mut err = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), out, err)
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python process serving on a free loopback port; killed when dropped.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    /// `script` written into `dir` as `name` and run with `args`; it prints its port on its
    /// first line.
    pub fn start(dir: &Path, name: &str, script: &str, args: &[&str]) -> PyServer {
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        let mut all = vec![path.to_str().unwrap()];
        all.extend_from_slice(args);
        PyServer::run(&all, |line| line.trim().parse().ok())
    }

    /// `python3 ARGS`, its port read from the first line it prints by `port_in`.
    pub fn run(args: &[&str], port_in: impl Fn(&str) -> Option<u16>) -> PyServer {
        let mut child = Command::new("python3")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = port_in(&line) else {
            let _ = child.kill();
            panic!("python3 {args:?} printed no port but {line:?}");
        };
        PyServer { child, port }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
