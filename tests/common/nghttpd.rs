//! A real HTTP/2-only server.

use std::process::Command;

/// `nghttpd --no-tls` serving `dir` on a free loopback port: a server that speaks HTTP/2
/// with prior knowledge and nothing else.
pub struct Nghttpd {
    child: std::process::Child,
    pub url: String,
}

impl Nghttpd {
    pub fn start(dir: &std::path::Path) -> Nghttpd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("nghttpd")
            .args(["--no-tls", "-a", "127.0.0.1", "-d"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nghttpd starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nghttpd listens");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Nghttpd {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Nghttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `nghttpd` (Debian's nghttp2-server) can be run here; see [`super::available`].
pub fn nghttpd() -> bool {
    let present = Command::new("nghttpd").arg("--version").output().is_ok();
    super::available("nghttpd", present)
}
