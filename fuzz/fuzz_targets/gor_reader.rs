//! The `.gor` reader on arbitrary bytes, plain and gzip, with small limits and a small
//! reorder window so the limit paths are reached, with and without `--skip-bad`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nprt::recording::{GorReader, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let opts = ReadOptions {
        max_record_bytes: if ctl & 1 == 0 { 4096 } else { 64 << 20 },
        reorder_window: usize::from(ctl >> 4) + 1,
        skip_bad: ctl & 2 != 0,
        ..ReadOptions::default()
    };
    let name = if ctl & 4 != 0 { "fuzz.gor.gz" } else { "fuzz.gor" };
    let Ok(mut reader) = GorReader::from_reader(std::io::Cursor::new(bytes.to_vec()), name, opts)
    else {
        return;
    };
    // Every iteration consumes input or ends; the bound is a guard against a stuck reader.
    for _ in 0..100_000 {
        match reader.next() {
            Some(Ok(ex)) => {
                let _ = nprt::http::route_key(&ex.request_head.method, &ex.request_head.target);
            }
            Some(Err(e)) => {
                let _ = e.to_string();
            }
            None => return,
        }
    }
    panic!("the reader did not end after 100000 items");
});
