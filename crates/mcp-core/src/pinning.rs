//! Tool pinning and poisoning quarantine (`pinning` in the `mcp_tools` configuration).
//!
//! A tool's description and schema are instructions to the model. A listed tool is checked
//! against the fingerprint someone approved (its *pin*) and against a detector of hidden
//! instructions; a tool that fails is *quarantined*: removed from `tools/list` and refused on
//! `tools/call`. Reference: `docs/pinning.md`.
//!
//! - [`canonical`] / [`fingerprint`]: RFC 8785 (JCS) canonical JSON of the tool object with its
//!   top-level `_meta` removed, and `sha256:` + lowercase hex of those bytes.
//! - [`Detector`]: the poisoning markers ([`Marker`]).
//! - [`Pinning`]: the compiled configuration: a verdict for a listed tool, a decision for a call.
//! - [`VerdictCache`]: per-worker memo of verdicts keyed by the exact bytes of the listed tool
//!   (a server lists the same definitions again and again; byte-identical input gives the same
//!   canonical form, so the hash and the detector run once per distinct definition).
//! - [`QuarantineState`]: which names the latest listing quarantined, encoded for the VM's
//!   shared data so every worker refuses the same calls.

use crate::config::ConfigError;
use crate::json::{self, JsonError, Kind, Limits, Value};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Prefix of every fingerprint.
pub const FINGERPRINT_PREFIX: &str = "sha256:";
/// Default for [`PinningConfig::max_description_bytes`].
pub const DEFAULT_MAX_DESCRIPTION_BYTES: usize = 8192;
/// Nesting accepted in a tool definition being canonicalized (JSON Schemas nest a few levels;
/// the list it came from was already checked against `max_json_depth`).
const CANON_MAX_DEPTH: usize = crate::config::MAX_MAX_JSON_DEPTH;

// ---------------------------------------------------------------------------------------
// Configuration

/// What happens to a listed tool without a pin, when `pins` is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum Unpinned {
    /// Quarantined: only approved tools are listed and callable (the default).
    #[default]
    Quarantine,
    /// Listed and callable (pinned tools are still checked for drift).
    Allow,
}

/// What the poisoning detector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum Poisoning {
    /// A tool with a marker is quarantined (the default).
    #[default]
    Quarantine,
    /// The tool is kept; the marker is counted and logged.
    Flag,
    /// No detection.
    Off,
}

/// The `pinning` block of the `mcp_tools` configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PinningConfig {
    /// Tool name → approved fingerprint (`sha256:` + 64 lowercase hex; see `docs/pinning.md`).
    #[serde(default)]
    pub pins: Option<BTreeMap<String, String>>,
    /// A listed tool without a pin, when `pins` is present: `quarantine` (default) or `allow`.
    #[serde(default)]
    pub unpinned: Unpinned,
    /// The poisoning detector: `quarantine` (default), `flag` or `off`.
    #[serde(default)]
    pub poisoning: Poisoning,
    /// A tool `description` longer than this (UTF-8 bytes) is a poisoning marker. Default 8192.
    #[serde(default = "default_max_description_bytes")]
    pub max_description_bytes: usize,
}

fn default_max_description_bytes() -> usize {
    DEFAULT_MAX_DESCRIPTION_BYTES
}

impl Default for PinningConfig {
    fn default() -> Self {
        PinningConfig {
            pins: None,
            unpinned: Unpinned::default(),
            poisoning: Poisoning::default(),
            max_description_bytes: DEFAULT_MAX_DESCRIPTION_BYTES,
        }
    }
}

impl PinningConfig {
    /// Checks every pin; errors name the key path under `pinning`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(pins) = &self.pins {
            for (name, fp) in pins {
                if name.is_empty() {
                    return Err(ConfigError::at(
                        "pinning.pins",
                        "a pinned tool name must not be empty",
                    ));
                }
                if parse_fingerprint(fp).is_none() {
                    return Err(ConfigError::at(
                        format!("pinning.pins.{name}"),
                        "must be \"sha256:\" followed by 64 lowercase hex digits",
                    ));
                }
            }
        }
        if self.max_description_bytes == 0 {
            return Err(ConfigError::at(
                "pinning.max_description_bytes",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The 32 bytes of a well-formed fingerprint.
fn parse_fingerprint(fp: &str) -> Option<[u8; 32]> {
    let hex = fp.strip_prefix(FINGERPRINT_PREFIX)?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let (hi, lo) = match pair {
            [h, l] => (digit(*h)?, digit(*l)?),
            _ => return None,
        };
        *o = hi << 4 | lo;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Canonical form and fingerprint

/// Why a tool definition has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    /// Not one strict JSON text (includes duplicate keys and invalid UTF-8).
    #[error("not valid JSON: {0}")]
    Json(#[from] JsonError),
    /// The tool is not a JSON object.
    #[error("a tool definition must be a JSON object")]
    NotObject,
    /// A string holds an escape that is not Unicode text (a lone surrogate).
    #[error("a string at byte {at} is not Unicode text")]
    Text {
        /// Offset of the string.
        at: usize,
    },
    /// A number that is not a finite IEEE 754 double (JCS has no form for it).
    #[error("the number at byte {at} is out of range")]
    Number {
        /// Offset of the number.
        at: usize,
    },
}

/// RFC 8785 (JSON Canonicalization Scheme) form of the tool object `tool`, with its top-level
/// `_meta` member removed: members sorted by the UTF-16 code units of their names, no
/// insignificant whitespace, strings with the minimal escapes of ECMAScript `JSON.stringify`,
/// numbers as ECMAScript `Number.prototype.toString` writes the nearest double.
pub fn canonical(tool: &[u8]) -> Result<Vec<u8>, CanonError> {
    let root = json::validate(
        tool,
        &Limits {
            max_depth: CANON_MAX_DEPTH,
        },
    )?;
    if root.kind() != Kind::Object {
        return Err(CanonError::NotObject);
    }
    let mut out = Vec::with_capacity(tool.len());
    write_canonical(&mut out, &root, true)?;
    Ok(out)
}

/// `sha256:` + lowercase hex SHA-256 of [`canonical`].
pub fn fingerprint(tool: &[u8]) -> Result<String, CanonError> {
    Ok(format_fingerprint(&digest(tool)?))
}

fn digest(tool: &[u8]) -> Result<[u8; 32], CanonError> {
    Ok(Sha256::digest(canonical(tool)?).into())
}

fn format_fingerprint(d: &[u8; 32]) -> String {
    let mut s = String::with_capacity(FINGERPRINT_PREFIX.len() + 64);
    s.push_str(FINGERPRINT_PREFIX);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn write_canonical(out: &mut Vec<u8>, v: &Value<'_>, top: bool) -> Result<(), CanonError> {
    match v.kind() {
        Kind::Object => {
            let mut members = Vec::new();
            for m in v.members() {
                // `validate` refused lone surrogates and invalid UTF-8: the key is exact.
                if top && m.key == "_meta" {
                    continue;
                }
                members.push((m.key, m.value));
            }
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_jcs_string(out, key);
                out.push(b':');
                write_canonical(out, value, false)?;
            }
            out.push(b'}');
        }
        Kind::Array => {
            out.push(b'[');
            for (i, e) in v.elements().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, &e, false)?;
            }
            out.push(b']');
        }
        Kind::String => {
            let s = v.as_str().ok_or(CanonError::Text { at: v.span().start })?;
            write_jcs_string(out, &s);
        }
        Kind::Number => {
            let at = v.span().start;
            let x = v.as_f64().ok_or(CanonError::Number { at })?;
            if !x.is_finite() {
                return Err(CanonError::Number { at });
            }
            out.extend_from_slice(es_number(x).as_bytes());
        }
        Kind::Bool | Kind::Null => out.extend_from_slice(v.raw()),
    }
    Ok(())
}

/// A JSON string as RFC 8785 writes it: `"` and `\` escaped, the five short escapes for
/// backspace, tab, line feed, form feed and carriage return, `\u00xx` (lowercase) for the other
/// control characters, everything else as UTF-8.
fn write_jcs_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0'));
                out.push(HEX.get(usize::from(c & 0xf)).copied().unwrap_or(b'0'));
            }
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// ECMAScript `Number.prototype.toString` of a finite double (ECMA-262 Number::toString),
/// which RFC 8785 section 3.2.2.3 requires.
pub fn es_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip: "d[.ddd]e<exp>".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = i64::try_from(digits.len()).unwrap_or(1);
    // value = digits × 10^(n − k)
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or(0));
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.push_str(&zeros(n - k));
    } else if 0 < n && n <= 21 {
        let split = usize::try_from(n).unwrap_or(0);
        out.push_str(digits.get(..split).unwrap_or_default());
        out.push('.');
        out.push_str(digits.get(split..).unwrap_or_default());
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.push_str(&zeros(-n));
        out.push_str(&digits);
    } else {
        let e = n - 1;
        out.push_str(digits.get(..1).unwrap_or_default());
        if k > 1 {
            out.push('.');
            out.push_str(digits.get(1..).unwrap_or_default());
        }
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.abs().to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Poisoning detector

/// A sign of hidden instructions in a tool definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// Unicode tag characters U+E0000–U+E007F (invisible; can spell out ASCII text).
    TagCharacters,
    /// Bidirectional controls U+202A–U+202E, U+2066–U+2069 (reorder what a reviewer sees).
    BidiControl,
    /// Zero-width characters U+200B–U+200D, U+2060, U+FEFF.
    ZeroWidth,
    /// ESC (U+001B): terminal escape sequences.
    Escape,
    /// An `<important>`-, `<system>`-style tag or a chat-template token.
    InstructionTag,
    /// A phrase such as "ignore previous instructions".
    InjectionPhrase,
    /// A `description` longer than `max_description_bytes`.
    OversizeDescription,
    /// A definition that is not valid JSON text or not an object (nothing can be checked).
    Unreadable,
}

impl Marker {
    /// The marker's name in logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Marker::TagCharacters => "tag_characters",
            Marker::BidiControl => "bidi_control",
            Marker::ZeroWidth => "zero_width",
            Marker::Escape => "escape",
            Marker::InstructionTag => "instruction_tag",
            Marker::InjectionPhrase => "injection_phrase",
            Marker::OversizeDescription => "oversize_description",
            Marker::Unreadable => "unreadable",
        }
    }
}

/// Tag names that mark hidden instructions (`<important>`, `</system>`, `<IMPORTANT foo>`).
const INSTRUCTION_TAGS: &str = r"(?i)<\s*/?\s*(important|system|instructions?|secret|hidden|critical)\b[^<>]{0,256}>|<\|(im_start|im_end|system|endoftext)\|>|\[/?INST\]";
/// Phrases that address the model over the user's head.
const INJECTION_PHRASES: &str = concat!(
    r"(?i)\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+|my\s+)?",
    r"(previous|prior|above|earlier|preceding|system)\s+(instructions|prompts?|directions|rules)\b",
    r"|\b(do\s+not|don['’]?t|never)\s+(tell|inform|notify|alert)\s+the\s+user\b",
    r"|\b(do\s+not|don['’]?t|never)\s+mention\s+(this\s+|it\s+)?to\s+the\s+user\b",
    r"|\bwithout\s+(telling|informing|notifying|alerting)\s+the\s+user\b",
);

/// The poisoning detector (compiled once per configuration).
#[derive(Debug, Clone)]
pub struct Detector {
    tags: regex::Regex,
    phrases: regex::Regex,
    max_description_bytes: usize,
}

impl Detector {
    /// A detector flagging descriptions over `max_description_bytes`.
    pub fn new(max_description_bytes: usize) -> Result<Self, ConfigError> {
        let compile = |re: &str| {
            regex::Regex::new(re).map_err(|e| ConfigError::at("pinning", format!("detector: {e}")))
        };
        Ok(Detector {
            tags: compile(INSTRUCTION_TAGS)?,
            phrases: compile(INJECTION_PHRASES)?,
            max_description_bytes,
        })
    }

    /// The first marker found in the tool object `tool` (every member name and string value,
    /// at any depth, except the top-level `_meta`), or `None`.
    pub fn scan(&self, tool: &[u8]) -> Option<Marker> {
        let root = match json::validate(
            tool,
            &Limits {
                max_depth: CANON_MAX_DEPTH,
            },
        ) {
            Ok(v) if v.kind() == Kind::Object => v,
            _ => return Some(Marker::Unreadable),
        };
        if let Some(d) = root.get("description") {
            if d.raw().len().saturating_sub(2) > self.max_description_bytes
                && d.as_str()
                    .is_some_and(|s| s.len() > self.max_description_bytes)
            {
                return Some(Marker::OversizeDescription);
            }
        }
        self.scan_value(&root, true)
    }

    fn scan_value(&self, v: &Value<'_>, top: bool) -> Option<Marker> {
        match v.kind() {
            Kind::Object => v.members().find_map(|m| {
                if top && m.key == "_meta" {
                    return None;
                }
                self.scan_text(&m.key)
                    .or_else(|| self.scan_value(&m.value, false))
            }),
            Kind::Array => v.elements().find_map(|e| self.scan_value(&e, false)),
            Kind::String => match v.as_str() {
                Some(s) => self.scan_text(&s),
                None => Some(Marker::Unreadable),
            },
            // A number beyond the double range has no canonical form (as in `canonical`).
            Kind::Number => match v.as_f64() {
                Some(x) if x.is_finite() => None,
                _ => Some(Marker::Unreadable),
            },
            _ => None,
        }
    }

    /// The first marker in one string.
    pub fn scan_text(&self, s: &str) -> Option<Marker> {
        // Invisible and control characters: every one of them is outside ASCII except ESC.
        if !s.is_ascii() || s.as_bytes().contains(&0x1b) {
            for c in s.chars() {
                let m = match c {
                    '\u{E0000}'..='\u{E007F}' => Marker::TagCharacters,
                    '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => Marker::BidiControl,
                    '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => Marker::ZeroWidth,
                    '\u{1B}' => Marker::Escape,
                    _ => continue,
                };
                return Some(m);
            }
        }
        if self.tags.is_match(s) {
            return Some(Marker::InstructionTag);
        }
        if self.phrases.is_match(s) {
            return Some(Marker::InjectionPhrase);
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Verdicts

/// Why a tool is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Its listed fingerprint is not its pin (or it has no canonical form).
    Drift,
    /// No pin, under `unpinned: quarantine`.
    Unpinned,
    /// The poisoning detector fired, under `poisoning: quarantine`.
    Poisoning,
}

impl Reason {
    /// The reason's name in logs, stats and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Drift => "drift",
            Reason::Unpinned => "unpinned",
            Reason::Poisoning => "poisoning",
        }
    }
}

/// The verdict on one listed tool definition (`Copy`: a cached verdict costs no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Quarantined, and why; `None` = listed as is.
    pub quarantine: Option<Reason>,
    /// The poisoning marker found, if the detector ran and fired (also under `flag`).
    pub marker: Option<Marker>,
    /// SHA-256 of the canonical form (`None` when the definition has none).
    pub digest: Option<[u8; 32]>,
}

impl Verdict {
    /// The listed fingerprint, `sha256:<hex>` (`None` when the definition has no canonical
    /// form).
    pub fn fingerprint(&self) -> Option<String> {
        self.digest.as_ref().map(format_fingerprint)
    }
}

/// What a `tools/call` to a name needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCheck {
    /// Refused whatever was listed (an unpinned name under `unpinned: quarantine`).
    Refuse(Reason),
    /// Refused if the latest listing of the name was quarantined ([`QuarantineState`]).
    Latest,
    /// Nothing can quarantine this name: it passes.
    Pass,
}

/// The compiled `pinning` configuration.
#[derive(Debug, Clone)]
pub struct Pinning {
    pins: Option<HashMap<String, [u8; 32]>>,
    unpinned: Unpinned,
    poisoning: Poisoning,
    detector: Option<Detector>,
    id: String,
}

impl Pinning {
    /// Compiles a validated configuration.
    pub fn compile(cfg: &PinningConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let pins = match &cfg.pins {
            Some(p) => {
                let mut map = HashMap::with_capacity(p.len());
                for (name, fp) in p {
                    let d = parse_fingerprint(fp).ok_or_else(|| {
                        ConfigError::at(format!("pinning.pins.{name}"), "bad fingerprint")
                    })?;
                    map.insert(name.clone(), d);
                }
                Some(map)
            }
            None => None,
        };
        let detector = match cfg.poisoning {
            Poisoning::Off => None,
            _ => Some(Detector::new(cfg.max_description_bytes)?),
        };
        Ok(Pinning {
            pins,
            unpinned: cfg.unpinned,
            poisoning: cfg.poisoning,
            detector,
            id: config_id(cfg),
        })
    }

    /// A short identifier of this configuration (hex of a SHA-256 over its pins and modes):
    /// the shared-data key of its [`QuarantineState`], so a new approval starts afresh.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The verdict on the listed tool `name` whose definition is `tool` (its exact bytes).
    pub fn check(&self, name: &str, tool: &[u8]) -> Verdict {
        let marker = self.detector.as_ref().and_then(|d| d.scan(tool));
        let digest = digest(tool).ok();
        let poisoned = marker.is_some() && self.poisoning == Poisoning::Quarantine;
        let pinned = self.pins.as_ref().map(|p| p.get(name));
        let quarantine = match pinned {
            Some(Some(pin)) if digest.as_ref() != Some(pin) => Some(Reason::Drift),
            Some(None) if self.unpinned == Unpinned::Quarantine => Some(Reason::Unpinned),
            _ if poisoned => Some(Reason::Poisoning),
            _ => None,
        };
        Verdict {
            quarantine,
            marker,
            digest,
        }
    }

    /// What a call to `name` needs (see [`CallCheck`]).
    pub fn call(&self, name: &str) -> CallCheck {
        match &self.pins {
            Some(p) if p.contains_key(name) => CallCheck::Latest,
            Some(_) if self.unpinned == Unpinned::Quarantine => CallCheck::Refuse(Reason::Unpinned),
            _ if self.poisoning == Poisoning::Quarantine => CallCheck::Latest,
            _ => CallCheck::Pass,
        }
    }

    /// Whether `name` is pinned.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.pins.as_ref().is_some_and(|p| p.contains_key(name))
    }
}

fn config_id(cfg: &PinningConfig) -> String {
    let mut h = Sha256::new();
    for (name, fp) in cfg.pins.iter().flatten() {
        h.update(name.len().to_le_bytes());
        h.update(name.as_bytes());
        h.update(fp.as_bytes());
    }
    h.update([
        u8::from(cfg.pins.is_some()),
        cfg.unpinned as u8,
        cfg.poisoning as u8,
    ]);
    h.update(cfg.max_description_bytes.to_le_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut s = String::with_capacity(16);
    for b in d.get(..8).unwrap_or_default() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Most distinct definitions a [`VerdictCache`] keeps.
pub const VERDICT_CACHE_ENTRIES: usize = 4096;
/// Largest definition a [`VerdictCache`] keeps (bytes); larger ones are checked every time.
pub const VERDICT_CACHE_MAX_TOOL_BYTES: usize = 64 * 1024;

/// Per-worker memo of verdicts, keyed by the tool's name and the exact bytes listed (compared
/// in full, never by a hash a server could collide).
///
/// Servers list the same tools in the same order every time, so the entry after the last one
/// used is tried first (no hashing); the name index is the fallback.
#[derive(Debug, Default)]
pub struct VerdictCache {
    slots: Vec<CacheSlot>,
    index: HashMap<String, usize>,
    /// The slot tried first: the one after the last slot used.
    next: usize,
}

#[derive(Debug)]
struct CacheSlot {
    name: String,
    bytes: Vec<u8>,
    verdict: Verdict,
}

impl VerdictCache {
    /// The verdict on `tool` listed as `name`, and whether it was computed now (a definition
    /// this worker had not seen: the glue logs it).
    pub fn check(&mut self, pinning: &Pinning, name: &str, tool: &[u8]) -> (Verdict, bool) {
        if let Some(slot) = self.slots.get(self.next) {
            if slot.name == name && same_bytes(&slot.bytes, tool) {
                self.next += 1;
                return (slot.verdict, false);
            }
        }
        let found = self.index.get(name).copied();
        if let Some(i) = found {
            if let Some(slot) = self.slots.get(i) {
                if same_bytes(&slot.bytes, tool) {
                    self.next = i + 1;
                    return (slot.verdict, false);
                }
            }
        }
        let verdict = pinning.check(name, tool);
        if tool.len() <= VERDICT_CACHE_MAX_TOOL_BYTES {
            let fresh = CacheSlot {
                name: name.to_owned(),
                bytes: tool.to_vec(),
                verdict,
            };
            match found.and_then(|i| Some((i, self.slots.get_mut(i)?))) {
                Some((i, slot)) => {
                    *slot = fresh;
                    self.next = i + 1;
                }
                None => {
                    if self.slots.len() >= VERDICT_CACHE_ENTRIES {
                        self.slots.clear();
                        self.index.clear();
                    }
                    self.index.insert(name.to_owned(), self.slots.len());
                    self.slots.push(fresh);
                    self.next = self.slots.len();
                }
            }
        }
        (verdict, true)
    }

    /// How many definitions are kept.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// `a == b`, eight bytes at a time (a slice comparison is a byte loop in wasm's `memcmp`).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    wa.zip(wb).all(|(x, y)| {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        word(x) == word(y)
    }) && ra == rb
}

// ---------------------------------------------------------------------------------------
// Cross-worker state

/// Most names a [`QuarantineState`] records besides the pinned ones; past it the state is
/// `full` and calls to names without a pin are refused (see [`QuarantineState::refuses`]).
pub const QUARANTINE_STATE_MAX_UNPINNED: usize = 4096;

/// Which names the latest listing seen by this Envoy quarantined (shared by the VM's workers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineState {
    names: BTreeSet<String>,
    unpinned: usize,
    full: bool,
}

impl QuarantineState {
    /// Decodes the shared-data value; an unreadable value reads as `full` (fail closed).
    pub fn decode(bytes: &[u8]) -> Self {
        let mut s = QuarantineState::default();
        if bytes.is_empty() {
            return s;
        }
        let Ok(root) = json::validate(bytes, &Limits { max_depth: 2 }) else {
            s.full = true;
            return s;
        };
        s.full = root.get("full").and_then(|v| v.as_bool()).unwrap_or(true);
        s.unpinned = root
            .get("unpinned")
            .and_then(|v| v.as_i64())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        for e in root.get("q").map(|q| q.elements()).into_iter().flatten() {
            match e.as_str() {
                Some(n) => {
                    s.names.insert(n.into_owned());
                }
                None => s.full = true,
            }
        }
        s
    }

    /// The shared-data value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(32 + self.names.iter().map(|n| n.len() + 3).sum::<usize>());
        out.extend_from_slice(b"{\"full\":");
        out.extend_from_slice(if self.full { b"true" } else { b"false" });
        let _ = write!(
            VecWriter(&mut out),
            ",\"unpinned\":{},\"q\":[",
            self.unpinned
        );
        for (i, n) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_escaped(&mut out, n);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Records one listing of `name`: quarantined or clean. Returns whether the state changed.
    pub fn record(&mut self, pinning: &Pinning, name: &str, quarantined: bool) -> bool {
        if quarantined {
            if self.names.contains(name) {
                return false;
            }
            if !pinning.is_pinned(name) {
                if self.unpinned >= QUARANTINE_STATE_MAX_UNPINNED {
                    let changed = !self.full;
                    self.full = true;
                    return changed;
                }
                self.unpinned += 1;
            }
            self.names.insert(name.to_owned())
        } else {
            if !self.names.remove(name) {
                return false;
            }
            if !pinning.is_pinned(name) {
                self.unpinned = self.unpinned.saturating_sub(1);
            }
            true
        }
    }

    /// Whether a call to `name` (whose [`Pinning::call`] is [`CallCheck::Latest`]) is refused.
    pub fn refuses(&self, pinning: &Pinning, name: &str) -> bool {
        self.names.contains(name) || (self.full && !pinning.is_pinned(name))
    }

    /// Whether nothing is quarantined.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.full
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
