//! A running `nprt capture` or `nprt mirror` capturing live on `lo`, its stderr collected as
//! it comes; started once it says it captures.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub struct Live {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// How long packets and copies still in flight on loopback are given before SIGTERM.
    settle: Duration,
}

impl Live {
    /// `nprt capture --interface lo --port PORT --output OUT` with `extra`.
    pub fn capture(port: u16, out: &std::path::Path, extra: &[&str]) -> Live {
        let mut command = super::nprt();
        command
            .args(["capture", "--interface", "lo", "--port", &port.to_string()])
            .args(["--output", out.to_str().unwrap()])
            .args(extra);
        // Packets still in flight on loopback reach the socket within milliseconds.
        Live::start(command, Duration::from_millis(300))
    }

    /// `nprt mirror --interface lo --port PORT --shadow SHADOW` with `extra`, built on
    /// `command` (the `nprt` binary, maybe with settings of its own); its stdout (the
    /// verdict) is kept for [`Live::stop`].
    pub fn mirror(mut command: Command, port: u16, shadow: &str, extra: &[&str]) -> Live {
        command
            .args(["mirror", "--interface", "lo", "--port", &port.to_string()])
            .args(["--shadow", shadow])
            .args(extra)
            .stdout(Stdio::piped());
        // The copies of the last packets need their answers too.
        Live::start(command, Duration::from_millis(500))
    }

    fn start(mut command: Command, settle: Duration) -> Live {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("nprt starts");
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
            panic!("nprt did not start capturing: {}", stderr.lock().unwrap());
        }
        Live {
            child,
            stderr,
            settle,
        }
    }

    /// Waits for it to end by itself (`--duration`, `--max-exchanges`).
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGTERM once what is in flight is through, then the exit code, stdout (a mirror's)
    /// and stderr.
    pub fn stop(mut self) -> (Option<i32>, String, String) {
        std::thread::sleep(self.settle);
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: plain system call on the child we spawned.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).unwrap();
        }
        let status = self.child.wait().unwrap();
        // The stderr reader takes the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().clone();
        (status.code(), out, err)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
