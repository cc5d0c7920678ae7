//! The example watch files in `watch/` validate without errors or warnings (they double as
//! documentation, so they must stay true).

use std::path::PathBuf;

use holdfast_watch::config;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../watch");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_watch_file_validates_cleanly() {
    let files = examples();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let v = config::load(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        assert!(v.warnings.is_empty(), "{}: {:#?}", f.display(), v.warnings);
        assert!(!v.config.rules.is_empty());
        // Every rule of the examples can target something.
        let d = holdfast_watch::Detectors::new(&v.config);
        assert_eq!(d.config().rules.len(), v.config.rules.len());
    }
}

#[test]
fn a_broken_copy_of_an_example_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../watch/hot-wallet.toml");
    let text = std::fs::read_to_string(&src)
        .unwrap()
        .replace("detector = \"poisoning\"", "detector = \"posioning\"");
    std::fs::copy(
        src.with_file_name("hot-wallets.txt"),
        dir.path().join("hot-wallets.txt"),
    )
    .unwrap();
    let path = dir.path().join("hot-wallet.toml");
    std::fs::write(&path, &text).unwrap();
    let e = config::load(&path).unwrap_err().to_string();
    let line = text.lines().position(|l| l.contains("posioning")).unwrap() + 1;
    assert!(
        e.starts_with(&format!(
            "{}:{line}: key `rule[hot-poisoning].detector`: unknown detector \"posioning\"",
            path.display()
        )),
        "{e}"
    );
}
