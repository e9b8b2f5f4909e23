//! `make oci`: the OCI image layouts under `dist/oci/<filter>/` (built by the `mcp-oci` binary)
//! are the Wasm image "compat" variant Istio's image fetcher accepts, are byte-for-byte
//! reproducible, and survive a push to and pull from a real registry (Debian's
//! `docker-registry`, spoken to over the plain registry v2 HTTP API; skipped with a printed
//! reason when the binary is absent — `make integration` installs it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use flate2::read::GzDecoder;
use mcp_integration::{free_port, paths};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FILTERS: [&str; 4] = ["mcp_tools", "mcp_scopes", "mcp_pii", "mcp_telemetry"];
const TAG: &str = "9.9.9-test";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn dist_wasm(filter: &str) -> PathBuf {
    let p = paths::dist_dir().join(format!("{filter}.wasm"));
    assert!(p.is_file(), "{} missing: run `make build`", p.display());
    p
}

/// Runs the real `mcp-oci` binary (what `make oci` runs) on `dist` into `out`.
fn build(dist: &Path, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_mcp-oci"))
        .arg("--dist")
        .arg(dist)
        .arg("--out")
        .arg(out)
        .arg("--tag")
        .arg(TAG)
        .args(FILTERS)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mcp-oci failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sha256(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Reads the blob a descriptor names, checking that its digest and size are the descriptor's.
fn blob(layout: &Path, desc: &Value, media_type: &str) -> Vec<u8> {
    assert_eq!(desc["mediaType"], media_type, "{desc}");
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        sha256(&bytes),
        digest,
        "blob content does not hash to its name"
    );
    assert_eq!(desc["size"].as_u64(), Some(bytes.len() as u64), "{desc}");
    bytes
}

/// The manifest, config and layer of one layout, all checked against their descriptors.
struct Image {
    manifest_digest: String,
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

fn read_image(layout: &Path) -> Image {
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        TAG
    );
    let manifest = blob(layout, &manifests[0], MANIFEST);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], MANIFEST);
    assert_eq!(m["annotations"]["module.wasm.image/variant"], "compat");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the compat variant has exactly one layer");
    let config = blob(layout, &m["config"], CONFIG);
    let layer = blob(layout, &layers[0], LAYER);
    // Nothing else in blobs/: the layout holds exactly this image.
    let mut names: Vec<String> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = [&manifests[0], &m["config"], &layers[0]]
        .iter()
        .map(|d| d["digest"].as_str().unwrap()[7..].to_string())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    Image {
        manifest_digest: manifests[0]["digest"].as_str().unwrap().to_string(),
        manifest,
        config,
        layer,
    }
}

fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn each_layout_is_a_compat_wasm_image_holding_the_built_filter() {
    let t0 = Instant::now();
    let out = tempfile::tempdir().unwrap();
    build(&paths::dist_dir(), out.path());
    for f in FILTERS {
        let layout = out.path().join(f);
        let img = read_image(&layout);
        let wasm = fs::read(dist_wasm(f)).unwrap();

        // GNU tar (an independent reader) sees exactly one entry, plugin.wasm, equal to the build.
        let layer_file = out.path().join(format!("{f}.layer.tgz"));
        fs::write(&layer_file, &img.layer).unwrap();
        let list = Command::new("tar")
            .arg("-tzvf")
            .arg(&layer_file)
            .output()
            .unwrap();
        assert!(list.status.success(), "tar -t failed on the {f} layer");
        let list = String::from_utf8(list.stdout).unwrap();
        assert_eq!(list.lines().count(), 1, "{list}");
        assert!(list.trim_end().ends_with(" plugin.wasm"), "{list}");
        assert!(list.contains("0/0"), "uid/gid 0: {list}");
        let extracted = Command::new("tar")
            .arg("-xzOf")
            .arg(&layer_file)
            .arg("plugin.wasm")
            .output()
            .unwrap();
        assert!(extracted.status.success());
        assert!(
            extracted.stdout == wasm,
            "{f}: plugin.wasm differs from dist"
        );

        // The config's diff_id is the digest of the uncompressed layer; no timestamps anywhere.
        let mut tar = Vec::new();
        GzDecoder::new(&img.layer[..])
            .read_to_end(&mut tar)
            .unwrap();
        let config: Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar));
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip1");
        assert!(config.get("created").is_none());
        // gzip header: magic, deflate, no flags (no file name), MTIME 0.
        assert_eq!(&img.layer[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert!(img.manifest_digest.starts_with("sha256:"));
        assert!(!img.manifest.is_empty());
    }
    eprintln!("layouts checked in {:?}", t0.elapsed());
}

#[test]
fn building_twice_gives_the_same_bytes_whatever_the_file_times() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build(&paths::dist_dir(), a.path());
    // Second build from copies of the .wasm files (new inodes, new mtimes) into a fresh dir.
    let dist_copy = tempfile::tempdir().unwrap();
    for f in FILTERS {
        fs::copy(dist_wasm(f), dist_copy.path().join(format!("{f}.wasm"))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    build(dist_copy.path(), b.path());
    let (fa, fb) = (all_files(a.path()), all_files(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between two builds");
    }
    // Rebuilding into an existing layout replaces it (no stale blobs left behind).
    build(&paths::dist_dir(), a.path());
    assert_eq!(all_files(a.path()).len(), fa.len());
    for f in FILTERS {
        assert_eq!(
            read_image(&a.path().join(f)).manifest_digest,
            read_image(&b.path().join(f)).manifest_digest
        );
    }
}

/// A throwaway `docker-registry` on a free port with storage in a temp dir; killed on drop.
struct Registry {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(bin: &Path) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: \"127.0.0.1:{port}\"}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reg = Registry {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = ureq::get(&format!("{}/v2/", reg.base)).call() {
            if r.status() == 200 {
                return reg;
            }
        }
        if let Ok(Some(status)) = reg.child.try_wait() {
            panic!("docker-registry exited early: {status}");
        }
        assert!(Instant::now() < deadline, "docker-registry not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pushes one blob with the monolithic upload of the registry v2 API (POST, then PUT ?digest=).
fn push_blob(base: &str, repo: &str, bytes: &[u8]) {
    let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.header("location").unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = ureq::put(&format!("{location}{sep}digest={}", sha256(bytes)))
        .set("content-type", "application/octet-stream")
        .send_bytes(bytes)
        .unwrap();
    assert_eq!(r.status(), 201);
}

fn get_bytes(url: &str, accept: &str) -> (Vec<u8>, Option<String>, Option<String>) {
    let r = ureq::get(url).set("accept", accept).call().unwrap();
    let ct = r.header("content-type").map(str::to_string);
    let digest = r.header("docker-content-digest").map(str::to_string);
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    (body, ct, digest)
}

#[test]
fn push_to_and_pull_from_a_local_registry_keeps_every_byte() {
    let bin = Path::new("/usr/bin/docker-registry");
    if !bin.is_file() {
        eprintln!(
            "SKIPPED push/pull: /usr/bin/docker-registry is absent (`make oci-registry` installs \
             Debian's docker-registry)"
        );
        return;
    }
    let t0 = Instant::now();
    let out = tempfile::tempdir().unwrap();
    build(&paths::dist_dir(), out.path());
    let reg = start_registry(bin);
    for f in FILTERS {
        let img = read_image(&out.path().join(f));
        let repo = format!("mcp/{f}");
        push_blob(&reg.base, &repo, &img.config);
        push_blob(&reg.base, &repo, &img.layer);
        let r = ureq::put(&format!("{}/v2/{repo}/manifests/{TAG}", reg.base))
            .set("content-type", MANIFEST)
            .send_bytes(&img.manifest)
            .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(img.manifest_digest.as_str())
        );

        // Pull by tag and by digest, as Istio does for `oci://…:tag` and `oci://…@sha256:…`.
        for reference in [TAG, img.manifest_digest.as_str()] {
            let (manifest, ct, digest) = get_bytes(
                &format!("{}/v2/{repo}/manifests/{reference}", reg.base),
                MANIFEST,
            );
            assert!(manifest == img.manifest, "{f}: manifest changed in transit");
            assert_eq!(ct.as_deref(), Some(MANIFEST));
            assert_eq!(digest.as_deref(), Some(img.manifest_digest.as_str()));
        }
        let m: Value = serde_json::from_slice(&img.manifest).unwrap();
        let (config, _, _) = get_bytes(
            &format!(
                "{}/v2/{repo}/blobs/{}",
                reg.base,
                m["config"]["digest"].as_str().unwrap()
            ),
            "*/*",
        );
        assert!(config == img.config);
        let (layer, _, _) = get_bytes(
            &format!(
                "{}/v2/{repo}/blobs/{}",
                reg.base,
                m["layers"][0]["digest"].as_str().unwrap()
            ),
            "*/*",
        );
        assert!(layer == img.layer, "{f}: layer changed in transit");
        let mut tar = Vec::new();
        GzDecoder::new(&layer[..]).read_to_end(&mut tar).unwrap();
        let wasm = fs::read(dist_wasm(f)).unwrap();
        // ustar: 512-byte header, then the file.
        assert!(
            tar[512..512 + wasm.len()] == wasm[..],
            "{f}: pulled wasm differs"
        );
    }
    eprintln!(
        "push + pull of {} images in {:?}",
        FILTERS.len(),
        t0.elapsed()
    );
}
