//! Replays every committed corpus file through its target, so `cargo test` (and `make unit`)
//! checks the invariants on the whole corpus without any fuzz tooling. `fuzz/crashers/` holds
//! reproducers of open bugs: they are not replayed here (see tests/crashers.rs).

use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

/// `(target, file)` for every file under `<root>/<target>/`, sorted.
fn files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(root) else {
        return out;
    };
    for t in targets {
        let t = t.expect("readable directory entry");
        if !t.path().is_dir() {
            continue;
        }
        let name = t.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(t.path()).expect("readable corpus directory") {
            let f = f.expect("readable corpus entry").path();
            if f.is_file() {
                out.push((name.clone(), f));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_corpus_file_passes_its_target() {
    let all = files(&dir("corpus"));
    for (name, _) in mcp_fuzz::TARGETS {
        assert!(
            all.iter().any(|(t, _)| t == name),
            "no corpus for target {name}"
        );
    }
    for (target, file) in &all {
        let run =
            mcp_fuzz::target(target).unwrap_or_else(|| panic!("corpus/{target}/ names no target"));
        let data = std::fs::read(file).expect("readable corpus file");
        // A failing file is named by the panic hook's output just above the panic.
        eprintln!("replaying {}", file.display());
        run(&data);
    }
    eprintln!("replayed {} corpus files", all.len());
}
