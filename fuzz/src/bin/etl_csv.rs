//! blockchain-etl CSV exports (`holdfast_chain::etl::read_etl_csv`: token transfers,
//! traces, transactions), as `import transfers` reads them.
//!
//! Checks: no panic; bounded memory; a row error names its column and what was expected;
//! an accepted file yields no more transfers than it has rows.

use holdfast_chain::etl::{EtlError, read_etl_csv};
use holdfast_fuzz::{Bound, bounded, check_field, check_message, run};

fn main() {
    run(|data| {
        let (out, _) = bounded(Bound::DEFAULT, data, || {
            read_etl_csv(std::io::Cursor::new(data), 1, "fuzz.csv")
        });
        match out {
            Ok(import) => assert!(
                import.transfers.len() <= import.rows,
                "{} transfers from {} rows",
                import.transfers.len(),
                import.rows
            ),
            Err(e) => {
                let message = e.to_string();
                check_message("etl", &message);
                assert!(
                    message.starts_with("fuzz.csv"),
                    "etl error names no file: {message}"
                );
                if let EtlError::Field {
                    column, expected, ..
                } = &e
                {
                    check_field("etl", column, &message);
                    check_message("etl", expected);
                }
            }
        }
    });
}
