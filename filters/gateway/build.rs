//! The policies' sources (filters/<policy>/src) are compiled into this crate as modules; under
//! `cfg(mcp_gateway)` they leave out their own proxy-wasm exports, since this module exports the
//! chain.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(mcp_gateway)");
    println!("cargo::rustc-cfg=mcp_gateway");
}
