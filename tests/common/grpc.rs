//! Python's grpcio (PyPI) for the gRPC tests: whether it is there, and a real gRPC server in
//! a few lines — no code generation, a generic handler.

use std::path::Path;
use std::process::{Command, Stdio};

/// A unary echo on `/echo.Echo/Call`: `echo:` and the message reversed, with trailing
/// metadata `x-echo-trailer`. A message starting with "fail" is answered UNAVAILABLE with
/// details (the trailer still set); with an argument N, so is every N-th call. A second
/// argument is the seconds each call takes.
const ECHO_SERVER: &str = r#"
import sys, time, grpc, itertools
from concurrent import futures

every = int(sys.argv[1]) if len(sys.argv) > 1 else 0
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0
calls = itertools.count(1)

def call(request, context):
    time.sleep(delay)
    context.set_trailing_metadata((("x-echo-trailer", "t-" + request[:8].hex()),))
    if request.startswith(b"fail") or (every and next(calls) % every == 0):
        context.abort(grpc.StatusCode.UNAVAILABLE, "asked to fail: %d bytes" % len(request))
    return b"echo:" + request[::-1]

handler = grpc.method_handlers_generic_handler(
    "echo.Echo", {"Call": grpc.unary_unary_rpc_method_handler(call)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

/// Whether `python3` can import grpc (skipped locally without it, failed in CI).
pub fn grpcio() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    super::available("python3 with grpcio (pip install grpcio)", present)
}

/// The echo server on a free loopback port; `fail_every` > 0 fails every N-th call.
pub fn echo_server(dir: &Path, fail_every: u32) -> super::PyServer {
    echo_server_taking(dir, fail_every, std::time::Duration::ZERO)
}

/// [`echo_server`] taking `delay` per call, like a real service.
pub fn echo_server_taking(
    dir: &Path,
    fail_every: u32,
    delay: std::time::Duration,
) -> super::PyServer {
    let args = [fail_every.to_string(), delay.as_secs_f64().to_string()];
    super::PyServer::start(dir, "echo_server.py", ECHO_SERVER, &[&args[0], &args[1]])
}

/// Writes the client `script` into `dir` and runs it with `args`; its stdout, once it
/// succeeded (its stderr in the failure otherwise).
pub fn run_client(dir: &Path, script: &str, args: &[&str]) -> String {
    let path = dir.join("client.py");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
