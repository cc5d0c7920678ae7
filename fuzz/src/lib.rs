//! What every fuzz target shares: a counting global allocator that aborts when one input
//! makes the parser hold more memory than its bound, the check that an error message is
//! an error message (non-empty, naming what it promises, no `Debug` dump), and the loop.
//!
//! Each target is a binary in `src/bin/`; `cargo afl build --release` instruments them and
//! `scripts/fuzz` runs them (docs/FUZZING.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes; aborts (a crash AFL records) past [`LIMIT`].
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

#[global_allocator]
static ALLOC: Counting = Counting;

fn over(size: usize) -> ! {
    // No allocation here: the allocator is the caller.
    let _ = std::io::stderr().write_all(b"fuzz: allocation bound exceeded for this input\n");
    let _ = size;
    std::process::abort();
}

fn grow(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if live > LIMIT.load(Ordering::Relaxed) {
        over(size);
    }
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the same layout; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grow(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Extra heap one input may hold at once beyond what was live before it: a fixed allowance
/// plus `per_byte` times the input's length. The parsers promise memory linear in their
/// input (and bounded by their documented size limits); this makes the promise a check.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub fixed: usize,
    pub per_byte: usize,
}

impl Bound {
    /// 64 MiB plus 64 bytes per input byte: generous for a JSON/TOML/YAML tree of the
    /// input, far below what an unbounded expansion reaches.
    pub const DEFAULT: Bound = Bound {
        fixed: 64 << 20,
        per_byte: 64,
    };
}

/// Runs `f` on `data` with the allocation bound armed; returns the peak extra heap.
pub fn bounded<T>(bound: Bound, data: &[u8], f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    let budget = bound
        .fixed
        .saturating_add(bound.per_byte.saturating_mul(data.len()));
    PEAK.store(base, Ordering::Relaxed);
    LIMIT.store(base.saturating_add(budget), Ordering::Relaxed);
    let out = f();
    LIMIT.store(usize::MAX, Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak)
}

/// What a `Debug` dump or an internal error leaks into a message meant for a person. (A value
/// quoted with `{:?}`, control characters escaped as `\u{c}`, is how the parsers show a value
/// safely, and is not one.)
const GARBAGE: &[&str] = &[
    "Error {",
    "Error(",
    "{ kind:",
    "Some(",
    "Custom {",
    "Utf8Error",
    "ParseIntError",
    "[src/",
    "panicked",
];

/// Asserts that `message` (an error's `Display`) is fit for a person: non-empty, no
/// `Debug` dump. `what` names the parser in the panic.
pub fn check_message(what: &str, message: &str) {
    assert!(
        !message.trim().is_empty(),
        "{what}: an error with an empty message"
    );
    let unquoted = outside_quotes(message);
    for g in GARBAGE {
        assert!(
            !unquoted.contains(g),
            "{what}: error message contains {g:?} (a Debug dump?): {message}"
        );
    }
}

/// `message` without its double-quoted parts (values the parsers echo, quoted and escaped:
/// they may hold anything the input held).
fn outside_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in message.chars() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => escaped = false,
            }
        } else if c == '"' {
            quoted = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Asserts that a field name an error promises is there.
pub fn check_field(what: &str, field: &str, message: &str) {
    assert!(
        !field.trim().is_empty(),
        "{what}: an error that names no field: {message}"
    );
}

/// Inputs larger than this are cut (every parser here documents a smaller limit or reads
/// files a person passes; AFL's own default maximum is 1 MiB).
pub const MAX_INPUT: usize = 2 << 20;

/// The fuzz loop: under `cargo afl`, AFL's persistent mode; built without it, one run of
/// each file named on the command line (or of standard input), for replaying crashes.
pub fn run(target: impl Fn(&[u8])) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() && std::env::var_os("__AFL_SHM_ID").is_none() {
        for path in args {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            target(&data[..data.len().min(MAX_INPUT)]);
            println!("{path}: ok");
        }
        return;
    }
    // A panic aborts the process (AFL's crash), so no state a panic could leave half-updated
    // is ever used again.
    let target = std::panic::AssertUnwindSafe(target);
    afl::fuzz!(|data: &[u8]| {
        let t = &target;
        (t.0)(&data[..data.len().min(MAX_INPUT)]);
    });
}

/// `intel import` of `data` as a file of `format` into a fresh data directory (the real
/// path: read, parse, validate every address, store), then the stored labels read back.
///
/// Checks: an error is fit for a person and names what it promises (a `SourceError::Field`
/// its field); an accepted file stores exactly the labels it reports, and they read back.
pub fn intel_import(data: &[u8], format: holdfast_intel::import::ImportFormat) {
    use holdfast_intel::import::{ImportOptions, import_file};
    use holdfast_intel::sources::SourceError;
    use holdfast_intel::{DataDir, IntelError};

    let tmp = tempfile::tempdir().expect("a temporary directory");
    let path = tmp.path().join("input");
    std::fs::write(&path, data).expect("write the input");
    let dir = DataDir::new(tmp.path().join("data"));
    let opts = ImportOptions {
        format: Some(format),
        category: Some(holdfast_primitives::Category::DprkAttributed),
        ..ImportOptions::default()
    };
    let (out, _) = bounded(Bound::DEFAULT, data, || import_file(&dir, &path, &opts));
    match out {
        Ok(report) => {
            let stored = dir.imported().expect("imported labels read back");
            assert_eq!(stored.len(), report.new, "stored labels vs the report");
            assert!(report.labels >= report.new, "more new labels than labels");
        }
        Err(e) => {
            let message = e.to_string();
            check_message("intel import", &message);
            match &e {
                IntelError::Source(
                    SourceError::Field { field, message, .. }
                    | SourceError::Tag { field, message, .. },
                ) => {
                    check_field("intel import", field, message);
                    check_message("intel import", message);
                }
                IntelError::Source(
                    SourceError::Yaml { message, .. }
                    | SourceError::Json { message, .. }
                    | SourceError::Csv { message, .. }
                    | SourceError::Format { message, .. },
                ) => check_message("intel import", message),
                IntelError::InvalidAddresses { examples, .. } => {
                    check_message("intel import", examples);
                }
                IntelError::Io { .. } | IntelError::Corrupt { .. } | IntelError::Usage(_) => {}
            }
        }
    }
}
