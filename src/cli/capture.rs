//! `nprt capture`: pcap/pcapng files or a live interface to a `.gor` recording, on top of
//! [`crate::capture`].

use super::*;

#[derive(Debug, Args)]
pub(super) struct CaptureArgs {
    /// Read packets from this pcap or pcapng file.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "interface",
        conflicts_with = "interface"
    )]
    pcap: Option<PathBuf>,
    /// Capture live on this interface (needs root or CAP_NET_RAW), e.g. lo or eth0.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Server port of the HTTP traffic to capture; give one per port.
    #[arg(long = "port", value_name = "P", required = true)]
    ports: Vec<u16>,
    /// The recording to write (.gor, or .gor.gz for gzip); mode 0600.
    #[arg(long, value_name = "REC.gor")]
    output: PathBuf,
    /// Live: stop after this long, e.g. 30s, 5m, 1h (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "D")]
    duration: Option<crate::spec::Span>,
    /// Stop after writing N exchanges.
    #[arg(long, value_name = "N")]
    max_exchanges: Option<u64>,
    /// Live capture engine (libpcap needs the `libpcap` cargo feature).
    #[arg(long, value_enum, default_value_t = Engine::AfPacket)]
    engine: Engine,
    /// libpcap engine: BPF filter (default: `tcp port P` for each --port).
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// Live: print the counters to stderr this often, e.g. 10s.
    #[arg(long, value_name = "D")]
    stats: Option<crate::spec::Span>,
    /// Connections tracked at once; beyond, idle and then the least recently active ones
    /// are ended, counted.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_connections: usize,
    /// Largest message kept, e.g. 64MiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    max_message_bytes: crate::spec::Size,
    /// End a connection after this long without packets.
    #[arg(long, value_name = "D", default_value = "120s")]
    idle_timeout: crate::spec::Span,
    /// Header fields one message may carry; a connection sending more is dropped, counted.
    #[arg(long, value_name = "N", default_value_t = crate::http::MAX_HEADERS)]
    max_headers: usize,
    /// Size one message head may take, e.g. 64KiB; a connection sending more is dropped,
    /// counted.
    #[arg(long, value_name = "SIZE", default_value = "64KiB")]
    max_head_bytes: crate::spec::Size,
    /// Requests one connection may pipeline ahead of its responses; beyond, the connection
    /// is dropped, counted.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_pipelined: usize,
    /// Redact secrets in what is written: Authorization, Proxy-Authorization, Cookie,
    /// Set-Cookie, query parameters named like token/key/secret/password/auth, and the
    /// extra headers given (comma-separated, optional). Without it the recording keeps
    /// every byte, so its requests replay as they were.
    #[arg(long = "redact", value_name = "HEADER", num_args = 0..=1, value_delimiter = ',', default_missing_value = "")]
    redact: Option<Vec<String>>,
    /// No start line or live counters on stderr; the report at the end and errors still
    /// print, and so does live capture's `capturing on IF` line, which scripts wait for.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Engine {
    AfPacket,
    Libpcap,
}

pub(super) async fn capture(args: CaptureArgs) -> CommandResult {
    use crate::capture::{run, CaptureError, Limits};
    crate::session::output::check_output_file(&args.output, "--output")?;
    let counters = std::sync::Arc::new(crate::progress::CaptureCounters::default());
    let opts = run::Options {
        ports: args.ports.clone(),
        limits: Limits {
            max_connections: args.max_connections,
            max_message_bytes: args.max_message_bytes.bytes(),
            idle_timeout_ns: u64::try_from(args.idle_timeout.0.as_nanos()).unwrap_or(u64::MAX),
            max_headers: args.max_headers,
            max_head_bytes: args.max_head_bytes.bytes(),
            max_pipelined: args.max_pipelined,
            ..Limits::default()
        },
        output: args.output.clone(),
        max_exchanges: args.max_exchanges,
        redact: args.redact.as_ref().map(crate::redact::Redactor::new),
        counters: Some(std::sync::Arc::clone(&counters)),
    };
    // `--stats` already prints the counters periodically: a status line too would draw over
    // them.
    let live_counters = crate::progress::LiveCounters::spawn(
        args.quiet || args.stats.is_some(),
        "capture",
        move || counters.status(),
    );
    // Everything a capture touches is on this machine (files, interfaces, permissions):
    // its failures are exit 2, never "a target failed".
    let fail = |e: CaptureError| Failure::bad_input(e);
    let report = if let Some(path) = args.pcap {
        crate::progress::start_line(
            args.quiet,
            &format!(
                "capturing {} for ports {:?} into {}",
                path.display(),
                args.ports,
                args.output.display()
            ),
        );
        tokio::task::spawn_blocking(move || run::from_file(&path, &opts))
            .await
            .map_err(Failure::runtime)?
            .map_err(fail)?
    } else {
        let interface = args.interface.unwrap_or_default();
        let live = crate::capture::live::LiveOptions {
            interface,
            duration: args.duration.map(|d| d.0),
            stats_every: args.stats.map(|d| d.0),
            libpcap: matches!(args.engine, Engine::Libpcap),
            bpf: args.bpf.clone(),
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let signal = tokio::spawn(async move {
            shutdown_signal().await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let result =
            tokio::task::spawn_blocking(move || crate::capture::live::run(&live, &opts, &stop))
                .await
                .map_err(Failure::runtime)?;
        signal.abort();
        result.map_err(fail)?
    };
    live_counters.stop();
    eprint!("{report}");
    Ok(Exit::Pass)
}
