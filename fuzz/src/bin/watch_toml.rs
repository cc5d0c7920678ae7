//! Watch file TOML (`holdfast_watch::config::validate`): no panic, bounded memory, every
//! error and warning names the file and, when it has a line, the key.

use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};
use holdfast_watch::config::{ConfigError, Diagnostic, validate};

fn check(d: &Diagnostic) {
    let message = d.to_string();
    check_message("watch file", &message);
    check_message("watch file", &d.message);
    assert_eq!(d.file, "fuzz.toml", "watch file error names another file");
    if let Some(key) = &d.key {
        check_field("watch file", key, &message);
    }
}

fn main() {
    // Address files are read relative to the watch file: an empty directory here.
    let base = tempfile::tempdir().expect("tempdir");
    run(|data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (out, _) = bounded(Bound::DEFAULT, data, || validate("fuzz.toml", text, base.path()));
        match out {
            Ok(v) => v.warnings.iter().for_each(check),
            Err(ConfigError::Invalid { errors, warnings }) => {
                assert!(!errors.is_empty(), "an invalid watch file with no error");
                errors.iter().chain(&warnings).for_each(check);
            }
            Err(e @ ConfigError::Read { .. }) => check_message("watch file", &e.to_string()),
        }
    });
}
