//! OFAC's SDN advanced XML (`holdfast_intel::sources::sdn_xml::parse_sdn_advanced`), as
//! `intel update --sdn-xml` reads it.
//!
//! Checks: no panic; bounded memory (the reader streams: memory grows with the address
//! features, not the file); errors are fit for a person; every entry has an address and a
//! currency, trimmed.

use holdfast_fuzz::{Bound, bounded, check_message, run};
use holdfast_intel::sources::sdn_xml::parse_sdn_advanced;

fn main() {
    run(|data| {
        let (out, _) = bounded(Bound::DEFAULT, data, || {
            parse_sdn_advanced(std::io::BufReader::new(data))
        });
        match out {
            Ok(publication) => {
                for e in &publication.entries {
                    assert!(!e.address.is_empty(), "an entry without an address: {e:?}");
                    assert_eq!(e.address.trim(), e.address, "an untrimmed address");
                }
            }
            Err(e) => check_message("sdn xml", &e.to_string()),
        }
    });
}
