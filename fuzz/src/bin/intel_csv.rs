//! CSV address lists through `intel import` (`holdfast_intel::import::import_file` with a
//! CSV, which runs `sources::csv_list::parse` and validates every address).

use holdfast_intel::import::ImportFormat;

fn main() {
    holdfast_fuzz::run(|data| holdfast_fuzz::intel_import(data, ImportFormat::Csv));
}
