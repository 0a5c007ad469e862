//! Fuzz target: `route::is_clean_path` never passes a path an application could resolve differently (dot segments, `;` parameters, encoded or back slashes, empty segments).
//!
//! Input: the path (UTF-8). Property: when `is_clean_path` says clean, no
//! `/`-separated segment, after decoding `%2e`/`%2E` and cutting at `;` (or
//! its encoding `%3b`, which is also cut), is `.` or `..`, and the path has no
//! `\`, `//`, `%2f` or `%5c` (any case).
#![no_main]

use hookgate::route::is_clean_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if !is_clean_path(path) {
        return;
    }
    let lower = path.to_ascii_lowercase();
    for bad in ["\\", "//", "%2f", "%5c"] {
        assert!(
            !lower.contains(bad),
            "{path:?} is clean but contains {bad:?}"
        );
    }
    for segment in lower.split('/') {
        let decoded = segment.replace("%2e", ".").replace("%3b", ";");
        let name = decoded.split(';').next().unwrap_or("");
        assert!(
            name != "." && name != "..",
            "{path:?} is clean but has the dot segment {segment:?}"
        );
    }
});
