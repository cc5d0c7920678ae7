//! GraphSense TagPack YAML through `intel import` (`holdfast_intel::import::import_file`
//! with a TagPack, which runs `sources::tagpack::parse` and validates every address).

use holdfast_intel::import::ImportFormat;

fn main() {
    holdfast_fuzz::run(|data| holdfast_fuzz::intel_import(data, ImportFormat::TagPack));
}
