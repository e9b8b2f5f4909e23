//! Packs built filters as OCI image layouts that Istio's Wasm image fetcher accepts, without
//! docker: `make oci` runs `mcp-oci --dist dist --out dist/oci mcp_tools mcp_scopes ...`.
//!
//! Format: the "compat" variant of the Wasm image specification, the first one Istio tries
//! (`pkg/wasm/imagefetcher.go`, `extractOCIStandardImage`): an OCI image whose single layer is
//! `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`, annotated
//! `module.wasm.image/variant: compat`. Standard media types, so any registry, `crane`, `oras`,
//! `skopeo`, docker and podman handle it.
//!
//! Reproducible: one tar entry with fixed mode/uid/gid/mtime and no user names, gzip with
//! mtime 0, no file name and a fixed OS byte (pure-Rust deflate pinned by Cargo.lock), JSON with
//! a fixed key order and no timestamps. The same `.wasm` always gives the same manifest digest.
//!
//! `mcp-oci [--dist DIR] [--out DIR] [--tag TAG] FILTER...` writes `<out>/<FILTER>/`
//! (`oci-layout`, `index.json`, `blobs/sha256/…`), replacing what was there, and prints each
//! manifest digest (pin it in Istio: `oci://registry/mcp_tools@sha256:<digest>`).

use anyhow::{anyhow, bail, Context as _, Result};
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: mcp-oci [--dist dist] [--out dist/oci] [--tag TAG] FILTER...";

/// Media types (OCI image spec v1.1; the layer type is what Istio's compat extractor checks).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file Istio looks for inside the layer.
pub const WASM_FILE: &str = "plugin.wasm";

fn main() -> Result<()> {
    let mut dist = PathBuf::from("dist");
    let mut out: Option<PathBuf> = None;
    let mut tag = env!("CARGO_PKG_VERSION").to_string();
    let mut filters: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--dist" => dist = PathBuf::from(val()?),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--tag" => tag = val()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            f if !f.starts_with('-') => filters.push(f.to_string()),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if filters.is_empty() {
        bail!("no filter named\n{USAGE}");
    }
    let out = out.unwrap_or_else(|| dist.join("oci"));
    for f in &filters {
        let wasm_path = dist.join(format!("{f}.wasm"));
        let wasm =
            fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
        if !wasm.starts_with(b"\0asm") {
            bail!("{} is not a wasm module", wasm_path.display());
        }
        let dir = out.join(f);
        let digest = write_layout(&dir, f, &tag, &wasm)?;
        println!("{:<28} {digest}  ({tag})", dir.display());
    }
    Ok(())
}

/// A content-addressed blob: its bytes and `sha256:<hex>` digest.
struct Blob {
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        let digest = sha256(&bytes);
        Blob { bytes, digest }
    }

    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes the image layout for one filter into `dir` and returns the manifest digest.
fn write_layout(dir: &Path, filter: &str, tag: &str, wasm: &[u8]) -> Result<String> {
    let tar = tar_one_file(WASM_FILE, wasm)?;
    let diff_id = sha256(&tar);
    let layer = Blob::new(gzip(&tar)?);
    let config = Blob::new(serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?);
    let annotations = json!({
        "module.wasm.image/variant": "compat",
        "org.opencontainers.image.title": filter,
        "org.opencontainers.image.version": tag,
    });
    let manifest = Blob::new(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(CONFIG_MEDIA_TYPE),
        "layers": [layer.descriptor(LAYER_MEDIA_TYPE)],
        "annotations": annotations,
    }))?);
    let mut manifest_desc = manifest.descriptor(MANIFEST_MEDIA_TYPE);
    if let Some(m) = manifest_desc.as_object_mut() {
        m.insert(
            "annotations".into(),
            json!({"org.opencontainers.image.ref.name": tag}),
        );
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [manifest_desc],
    }))?;

    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    for blob in [&layer, &config, &manifest] {
        let hex = blob.digest.trim_start_matches("sha256:");
        fs::write(blobs.join(hex), &blob.bytes)?;
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    fs::write(dir.join("index.json"), index)?;
    Ok(manifest.digest)
}

/// A POSIX ustar archive holding one regular file: mode 0644, uid/gid 0, mtime 0, no user or
/// group names, then the two zero blocks that end an archive.
fn tar_one_file(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    if name.len() > 99 {
        bail!("tar entry name too long: {name}");
    }
    let mut h = [0u8; 512];
    put(&mut h, 0, name.as_bytes())?;
    put(&mut h, 100, b"0000644\0")?;
    put(&mut h, 108, b"0000000\0")?;
    put(&mut h, 116, b"0000000\0")?;
    put(&mut h, 124, format!("{:011o}\0", data.len()).as_bytes())?;
    put(&mut h, 136, b"00000000000\0")?;
    put(&mut h, 148, b"        ")?; // checksum field counts as spaces while summing
    put(&mut h, 156, b"0")?; // regular file
    put(&mut h, 257, b"ustar\0")?;
    put(&mut h, 263, b"00")?;
    put(&mut h, 329, b"0000000\0")?;
    put(&mut h, 337, b"0000000\0")?;
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes())?;

    let padding = (512 - data.len() % 512) % 512;
    let mut out = Vec::with_capacity(512 + data.len() + padding + 1024);
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len() + padding + 1024, 0);
    Ok(out)
}

fn put(header: &mut [u8; 512], offset: usize, bytes: &[u8]) -> Result<()> {
    header
        .get_mut(offset..offset + bytes.len())
        .ok_or_else(|| anyhow!("tar header field at {offset} overflows"))?
        .copy_from_slice(bytes);
    Ok(())
}

/// gzip with no timestamp, no file name and OS byte 255 ("unknown"), at the best compression.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}
