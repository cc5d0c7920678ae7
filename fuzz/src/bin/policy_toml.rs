//! Policy TOML (`holdfast_guard::Policy::parse`): no panic, bounded memory, every error names
//! the file and, when it has a line, a key.

use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};
use holdfast_guard::Policy;

fn main() {
    run(|data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (out, _) = bounded(Bound::DEFAULT, data, || Policy::parse("fuzz.toml", text));
        match out {
            Ok(policy) => {
                // What the service and `guard check` read from a parsed policy.
                let _ = policy.warnings();
                let _ = policy.history_needs();
            }
            Err(e) => {
                let message = e.to_string();
                check_message("policy", &message);
                check_message("policy", &e.message);
                assert_eq!(e.file, "fuzz.toml", "policy error names another file");
                if let Some(key) = &e.key {
                    check_field("policy", key, &message);
                }
            }
        }
    });
}
