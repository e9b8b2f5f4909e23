//! Reproducers of open mcp-core bugs (`fuzz/crashers/<target>/`, see `src/known.rs`): each
//! must still fail when replayed strictly. Ignored by default (they do fail); run
//! `cargo test -p mcp-fuzz --test crashers -- --ignored` to see which bugs are fixed: a
//! crasher that passes goes to `fuzz/corpus/<target>/`, and its `known::Bug` entry goes away.
//! A test binary of its own, so strict mode cannot leak into the corpus replay.

use std::path::Path;

#[test]
#[ignore = "crashers reproduce open bugs; run with --ignored to see which are fixed"]
fn open_crashers_still_fail() {
    mcp_fuzz::known::set_strict(true);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crashers");
    let mut fixed = Vec::new();
    let mut count = 0;
    for t in std::fs::read_dir(&root).expect("fuzz/crashers exists") {
        let t = t.expect("readable entry").path();
        let name = t.file_name().expect("named").to_string_lossy().into_owned();
        let Some(run) = mcp_fuzz::target(&name) else {
            continue;
        };
        for f in std::fs::read_dir(&t).expect("readable crasher directory") {
            let f = f.expect("readable entry").path();
            let data = std::fs::read(&f).expect("readable crasher");
            count += 1;
            if std::panic::catch_unwind(|| run(&data)).is_ok() {
                fixed.push(f);
            }
        }
    }
    assert!(count > 0, "no crashers under {}", root.display());
    assert!(
        fixed.is_empty(),
        "fixed, move them to fuzz/corpus/: {fixed:?}"
    );
}
