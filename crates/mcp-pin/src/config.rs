//! The `pinning` block of a filter configuration, read with the filter's own loader so a
//! configuration `mcp-pin diff` accepts is one the filter loads.

use mcp_core::config::{self, ConfigError};
use mcp_core::gateway::GatewayConfig;
use mcp_core::pinning::PinningConfig;
use mcp_core::tools::ToolsConfig;
use serde_json::Value;

/// Which kind of document the pins came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `mcp_gateway` configuration (`tools.pinning`).
    Gateway,
    /// An `mcp_tools` configuration (`pinning`), including one holding only `pinning`.
    Tools,
    /// The inside of a `pinning` block (`{"pins": {...}, "unpinned": ...}`).
    Block,
}

/// Keys of the inside of a `pinning` block.
const BLOCK_KEYS: [&str; 4] = ["pins", "unpinned", "poisoning", "max_description_bytes"];

/// The pinning configuration in `text`: an `mcp_gateway` configuration (a top-level `tools`
/// section), an `mcp_tools` configuration (a top-level `pinning`), or a bare `pinning` block.
/// Errors name the key, with the filter's own messages.
pub fn pinning_from(text: &[u8]) -> Result<(PinningConfig, Source), ConfigError> {
    let doc: Value =
        serde_json::from_slice(text).map_err(|e| ConfigError::at("", format!("not JSON: {e}")))?;
    let Some(obj) = doc.as_object() else {
        return Err(ConfigError::at("", "not a JSON object"));
    };
    if obj.contains_key("tools") {
        let loaded = config::load::<GatewayConfig>(text)?;
        let pinning = loaded
            .filter
            .tools
            .and_then(|t| t.pinning)
            .ok_or_else(|| ConfigError::at("tools.pinning", "absent: no pins to compare"))?;
        return Ok((pinning, Source::Gateway));
    }
    if obj.contains_key("pinning") {
        let loaded = config::load::<ToolsConfig>(text)?;
        let pinning = loaded
            .filter
            .pinning
            .ok_or_else(|| ConfigError::at("pinning", "absent: no pins to compare"))?;
        return Ok((pinning, Source::Tools));
    }
    if !obj.is_empty() && obj.keys().all(|k| BLOCK_KEYS.contains(&k.as_str())) {
        let cfg: PinningConfig =
            serde_json::from_value(doc.clone()).map_err(|e| ConfigError::at("pinning", e))?;
        cfg.validate()?;
        return Ok((cfg, Source::Block));
    }
    Err(ConfigError::at(
        "",
        "no pinning block: expected an mcp_tools configuration with \"pinning\", an \
         mcp_gateway configuration with \"tools\": {\"pinning\": ...}, or a pinning block \
         ({\"pins\": ...})",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_core::pinning::{Poisoning, Unpinned};

    const FP: &str = "sha256:f211bedf2d3b2bf3bb71f5e3c6ac1eb233b934e5f48899cc2883d0264a716e26";

    #[test]
    fn reads_a_tools_config_with_other_keys() {
        let text = format!(
            r#"{{"allow": ["*"], "deny": ["admin_*"], "max_body_bytes": 65536,
                "pinning": {{"pins": {{"search": "{FP}"}}, "unpinned": "allow"}}}}"#
        );
        let (cfg, src) = pinning_from(text.as_bytes()).unwrap();
        assert_eq!(src, Source::Tools);
        assert_eq!(cfg.pins.unwrap()["search"], FP);
        assert_eq!(cfg.unpinned, Unpinned::Allow);
        assert_eq!(cfg.poisoning, Poisoning::Quarantine);
    }

    #[test]
    fn reads_the_output_of_fetch_as_a_tools_config() {
        let text = format!(
            "{{\n  \"pinning\": {{\n    \"pins\": {{\n      \"a\": \"{FP}\"\n    }},\n    \
             \"unpinned\": \"quarantine\",\n    \"poisoning\": \"quarantine\"\n  }}\n}}\n"
        );
        let (cfg, src) = pinning_from(text.as_bytes()).unwrap();
        assert_eq!(src, Source::Tools);
        assert_eq!(cfg.pins.unwrap().len(), 1);
    }

    #[test]
    fn reads_a_gateway_config() {
        let text = format!(
            r#"{{"telemetry": {{}}, "tools": {{"allow": ["*"],
                "pinning": {{"pins": {{"search": "{FP}"}}, "poisoning": "flag"}}}}}}"#
        );
        let (cfg, src) = pinning_from(text.as_bytes()).unwrap();
        assert_eq!(src, Source::Gateway);
        assert_eq!(cfg.poisoning, Poisoning::Flag);
    }

    #[test]
    fn reads_a_bare_block() {
        let text = format!(r#"{{"pins": {{"search": "{FP}"}}, "max_description_bytes": 100}}"#);
        let (cfg, src) = pinning_from(text.as_bytes()).unwrap();
        assert_eq!(src, Source::Block);
        assert_eq!(cfg.max_description_bytes, 100);
    }

    #[test]
    fn errors_name_the_key() {
        let bad_fp = br#"{"tools": {"pinning": {"pins": {"search": "sha256:XYZ"}}}}"#;
        let e = pinning_from(bad_fp).unwrap_err();
        assert_eq!(e.path, "tools.pinning.pins.search", "{e}");
        let unknown = br#"{"pinning": {"pins": {}, "unpined": "allow"}}"#;
        let e = pinning_from(unknown).unwrap_err();
        assert!(e.to_string().contains("unpined"), "{e}");
        let bare_bad = br#"{"pins": {"x": "sha256:00"}}"#;
        assert_eq!(pinning_from(bare_bad).unwrap_err().path, "pinning.pins.x");
        let none = br#"{"tools": {"allow": ["*"]}}"#;
        assert_eq!(pinning_from(none).unwrap_err().path, "tools.pinning");
        let other = br#"{"scopes": {}}"#;
        assert!(pinning_from(other)
            .unwrap_err()
            .message
            .contains("no pinning block"));
        assert!(pinning_from(b"[1]").is_err());
        assert!(pinning_from(b"{nope")
            .unwrap_err()
            .message
            .contains("not JSON"));
    }
}
