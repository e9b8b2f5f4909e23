//! The binary itself: arguments in, exit status and streams out (the logic is tested in the
//! library; this checks `main` forwards them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::process::Command;

fn mcp_pin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-pin"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn exit_status_and_streams() {
    let (code, out, err) = mcp_pin(&["--version"]);
    assert_eq!((code, out.trim(), err.as_str()), (0, "mcp-pin 0.1.0", ""));
    let (code, out, err) = mcp_pin(&["fetch"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("--url is required"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (code, out, err) = mcp_pin(&["fetch", "--url", &url, "--timeout", "5"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with("mcp-pin: error: server/discover failed:"),
        "{err}"
    );
}
