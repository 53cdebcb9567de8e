//! Replays the fuzz seed corpora and every saved fuzz finding (`fixtures/fuzz/<target>/`,
//! `fixtures/fuzz/regressions/<target>/`) through the fuzz targets' own checks, so the
//! regular test suite guards them without running a fuzzer.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of the target's seed and regression folders; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz");
    let mut count = 0;
    for dir in [root.join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn frame_reader() {
    assert!(replay("frame_reader", checks::check_frame_reader) > 0);
}

#[test]
fn classify_json() {
    assert!(replay("classify_json", checks::check_classify_json) > 0);
}

#[test]
fn message_roundtrip() {
    assert!(replay("message_roundtrip", checks::check_message) > 0);
}

#[test]
fn ndjson_line() {
    assert!(replay("ndjson_line", checks::check_ndjson) > 0);
}

#[test]
fn http_response() {
    assert!(replay("http_response", checks::check_http_response) > 0);
}
