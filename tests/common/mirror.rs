//! A running `nprt mirror` (passive: live capture on `lo`), its stderr collected as it comes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub struct Mirror {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Mirror {
    /// `nprt mirror --interface lo --port PORT --shadow SHADOW` with `extra`, built on
    /// `command` (the `nprt` binary, maybe with settings of its own); returns once it
    /// captures.
    pub fn start(mut command: Command, port: u16, shadow: &str, extra: &[&str]) -> Mirror {
        let mut child = command
            .args(["mirror", "--interface", "lo", "--port", &port.to_string()])
            .args(["--shadow", shadow])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nprt mirror starts");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready, wait) = mpsc::channel();
        let text = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.starts_with("capturing on") {
                    let _ = ready.send(());
                }
                let mut t = text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        if wait.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            panic!("mirror did not start: {}", stderr.lock().unwrap());
        }
        Mirror { child, stderr }
    }

    /// SIGTERM (once the packets and copies in flight on loopback are through), then the
    /// exit code, stdout and stderr.
    pub fn stop(mut self) -> (Option<i32>, String, String) {
        std::thread::sleep(Duration::from_millis(500));
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: plain system call on the child we spawned.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().clone();
        (status.code(), out, err)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
