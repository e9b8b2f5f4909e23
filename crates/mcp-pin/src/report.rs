//! `fetch` output (the `pinning` block, the approved definitions) and the `diff` report.

use crate::client::ListedTool;
use mcp_core::config::ConfigError;
use mcp_core::pinning::{self, Marker, Pinning, PinningConfig, Poisoning, Reason, Unpinned};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Lines of context around a change in a definition diff.
const CONTEXT: usize = 3;
/// Largest definition diff computed exactly (lines × lines); beyond it both sides are shown.
const MAX_DIFF_CELLS: usize = 4_000_000;
/// Indent of the lines under a tool.
const INDENT: &str = "           ";

/// A fingerprinted listing: every distinct listed definition, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprinted {
    /// name → (fingerprint, the exact bytes listed).
    pub tools: BTreeMap<String, (String, Vec<u8>)>,
    /// Problems that keep a tool out of the pins (no canonical form), one line each.
    pub warnings: Vec<String>,
}

/// Why a listing cannot be pinned (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingError(pub String);

/// Fingerprints every listed tool. A name listed twice with different definitions is an error
/// (one pin cannot approve both); a definition without a canonical form is left out, warned.
pub fn fingerprint_all(listed: &[ListedTool]) -> Result<Fingerprinted, ListingError> {
    let mut tools: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut warnings = Vec::new();
    for t in listed {
        let fp = match pinning::fingerprint(&t.raw) {
            Ok(fp) => fp,
            Err(e) => {
                warnings.push(format!(
                    "tool {:?} is not pinned: its definition has no canonical form ({e}); the \
                     filter quarantines it whatever the pins say",
                    t.name
                ));
                continue;
            }
        };
        if let Some((prev, _)) = tools.get(&t.name) {
            if *prev != fp {
                return Err(ListingError(format!(
                    "the server lists tool {:?} twice with different definitions ({prev} and \
                     {fp}): one pin cannot approve both",
                    t.name
                )));
            }
            continue;
        }
        tools.insert(t.name.clone(), (fp, t.raw.clone()));
    }
    Ok(Fingerprinted { tools, warnings })
}

/// The `fetch` output: `{"pinning": {"pins": {...}, "unpinned": "quarantine", "poisoning":
/// "quarantine"}}`, names sorted, pretty-printed, ending in a newline.
pub fn pinning_block(fp: &Fingerprinted) -> String {
    let mut out = String::from("{\n  \"pinning\": {\n    \"pins\": {");
    for (i, (name, (f, _))) in fp.tools.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        let _ = write!(out, "      {}: {}", json_str(name), json_str(f));
    }
    if !fp.tools.is_empty() {
        out.push_str("\n    ");
    }
    out.push_str(
        "},\n    \"unpinned\": \"quarantine\",\n    \"poisoning\": \"quarantine\"\n  }\n}\n",
    );
    out
}

/// The approved definitions file: name → the tool object as listed, pretty-printed.
pub fn definitions_file(fp: &Fingerprinted) -> String {
    let mut map = serde_json::Map::new();
    for (name, (_, raw)) in &fp.tools {
        // The definition has a canonical form, so it is one valid JSON object.
        let v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        map.insert(name.clone(), v);
    }
    let mut s = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
    s.push('\n');
    s
}

/// Reads a definitions file written by `fetch --definitions`.
pub fn read_definitions(text: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = v else {
        return Err("not a JSON object of tool name → definition".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if !v.is_object() {
            return Err(format!("{k}: the definition is not a JSON object"));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------------------
// diff

/// How one tool compares with the pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Listed with its pinned fingerprint.
    Unchanged,
    /// Listed with another fingerprint (`None`: the definition has no canonical form).
    Drift {
        /// The pin.
        approved: String,
        /// The listed fingerprint.
        listed: Option<String>,
    },
    /// Listed, not pinned.
    New,
    /// Pinned, not listed.
    Gone,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tool's name.
    pub name: String,
    /// Pins against listing.
    pub status: Status,
    /// The listed fingerprint (listed tools).
    pub fingerprint: Option<String>,
    /// The pin (pinned tools).
    pub pin: Option<String>,
    /// The poisoning marker the filter's detector finds (listed tools, unless `poisoning: off`).
    pub marker: Option<Marker>,
    /// What the filter does with the listed definition: quarantined and why, or listed.
    pub quarantine: Option<Reason>,
    /// Readable lines under the tool (the definition diff, notes).
    pub detail: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One entry per name, sorted by name.
    pub entries: Vec<Entry>,
    /// `poisoning` mode of the configuration (how markers are reported).
    pub poisoning: Poisoning,
    /// `unpinned` mode and whether `pins` is present (how new tools are reported).
    pub unpinned: Unpinned,
    /// `pins` is present.
    pub has_pins: bool,
}

/// Exit status: nothing to re-approve.
pub const EXIT_OK: i32 = 0;
/// Exit status: drift (or a marker the filter quarantines; new/gone tools with `--strict`).
pub const EXIT_DRIFT: i32 = 1;
/// Exit status: an error (unreachable, not MCP, bad configuration, bad arguments).
pub const EXIT_ERROR: i32 = 2;

/// Compares a listing with the pins, with the filter's own verdict on each listed definition.
/// `definitions` (from `fetch --definitions`) adds a line diff under each drifted tool.
pub fn compare(
    cfg: &PinningConfig,
    listed: &[ListedTool],
    definitions: Option<&BTreeMap<String, Value>>,
) -> Result<Report, ConfigError> {
    let pinning = Pinning::compile(cfg)?;
    let pins = cfg.pins.clone().unwrap_or_default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for t in listed {
        let same = seen.entry(t.name.as_str()).or_default();
        if same.contains(&t.raw.as_slice()) {
            continue;
        }
        same.push(&t.raw);
        let verdict = pinning.check(&t.name, &t.raw);
        let pin = pins.get(&t.name).cloned();
        let status = match &pin {
            Some(p) if verdict.fingerprint().as_deref() == Some(p.as_str()) => Status::Unchanged,
            Some(p) => Status::Drift {
                approved: p.clone(),
                listed: verdict.fingerprint(),
            },
            None => Status::New,
        };
        let mut detail = Vec::new();
        if let (Status::Drift { approved, .. }, Some(defs)) = (&status, definitions) {
            detail = drift_detail(&t.name, approved, &t.raw, defs);
        }
        entries.push(Entry {
            name: t.name.clone(),
            status,
            fingerprint: verdict.fingerprint(),
            pin,
            marker: verdict.marker,
            quarantine: verdict.quarantine,
            detail,
        });
    }
    for (name, pin) in &pins {
        if !seen.contains_key(name.as_str()) {
            entries.push(Entry {
                name: name.clone(),
                status: Status::Gone,
                fingerprint: None,
                pin: Some(pin.clone()),
                marker: None,
                quarantine: None,
                detail: Vec::new(),
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Report {
        entries,
        poisoning: cfg.poisoning,
        unpinned: cfg.unpinned,
        has_pins: cfg.pins.is_some(),
    })
}

fn drift_detail(
    name: &str,
    approved_fp: &str,
    listed: &[u8],
    defs: &BTreeMap<String, Value>,
) -> Vec<String> {
    let Some(approved) = defs.get(name) else {
        return vec![format!(
            "(no approved definition of {} in the definitions file)",
            json_str(name)
        )];
    };
    let approved_bytes = approved.to_string().into_bytes();
    let mut out = Vec::new();
    if pinning::fingerprint(&approved_bytes).ok().as_deref() != Some(approved_fp) {
        out.push(
            "(the approved definition in the definitions file does not have the pinned \
             fingerprint: the diff is against it all the same)"
                .to_owned(),
        );
    }
    let (Ok(a), Ok(b)) = (pretty_canonical(&approved_bytes), pretty_canonical(listed)) else {
        out.push("(the listed definition has no canonical form: no diff)".to_owned());
        return out;
    };
    out.extend(line_diff(&a, &b, "approved", "listed"));
    out
}

impl Report {
    /// The exit status: [`EXIT_DRIFT`] when a pinned tool drifted or the filter quarantines a
    /// listed tool for a poisoning marker, or (`strict`) a tool is new or gone; else
    /// [`EXIT_OK`].
    pub fn exit_code(&self, strict: bool) -> i32 {
        let fails = self.entries.iter().any(|e| match e.status {
            Status::Drift { .. } => true,
            Status::New | Status::Gone if strict => true,
            _ => e.quarantine == Some(Reason::Poisoning),
        });
        if fails {
            EXIT_DRIFT
        } else {
            EXIT_OK
        }
    }

    /// The human-readable report, one block per tool, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self
            .entries
            .iter()
            .map(|e| e.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        let (mut unchanged, mut drift, mut new, mut gone, mut poisoned) = (0, 0, 0, 0, 0);
        for e in &self.entries {
            let name = format!("{:width$}", e.name);
            let line = match &e.status {
                Status::Unchanged => {
                    unchanged += 1;
                    format!(
                        "unchanged  {name}  {}",
                        e.pin.as_deref().unwrap_or_default()
                    )
                }
                Status::Drift { approved, listed } => {
                    drift += 1;
                    format!(
                        "DRIFT      {name}  {approved} → {}",
                        listed.as_deref().unwrap_or("(no canonical form)")
                    )
                }
                Status::New => {
                    new += 1;
                    let what = match (self.has_pins, self.unpinned) {
                        (true, Unpinned::Quarantine) => {
                            "not pinned: the filter quarantines it (unpinned: quarantine)"
                        }
                        (true, Unpinned::Allow) => "not pinned: listed as is (unpinned: allow)",
                        (false, _) => "not pinned (the configuration has no pins)",
                    };
                    format!(
                        "NEW        {name}  {}  {what}",
                        e.fingerprint.as_deref().unwrap_or("(no canonical form)")
                    )
                }
                Status::Gone => {
                    gone += 1;
                    format!(
                        "GONE       {name}  {}  pinned, not listed",
                        e.pin.as_deref().unwrap_or_default()
                    )
                }
            };
            out.push_str(line.trim_end());
            out.push('\n');
            if let Some(m) = e.marker {
                poisoned += 1;
                let what = match (self.poisoning, e.quarantine) {
                    (Poisoning::Quarantine, Some(Reason::Poisoning)) => {
                        "the filter quarantines it (poisoning: quarantine)"
                    }
                    (Poisoning::Quarantine, _) => "the filter quarantines it",
                    (Poisoning::Flag, _) => "the filter flags it (poisoning: flag)",
                    (Poisoning::Off, _) => "",
                };
                let _ = writeln!(out, "{INDENT}POISONING marker={} {what}", m.as_str());
            }
            for d in &e.detail {
                let _ = writeln!(out, "{INDENT}{d}");
            }
        }
        let _ = writeln!(
            out,
            "summary: {unchanged} unchanged, {drift} drifted, {new} new, {gone} gone, \
             {poisoned} with a poisoning marker"
        );
        out
    }
}

// ---------------------------------------------------------------------------------------
// Readable definitions

/// The canonical form of a tool definition (RFC 8785, top-level `_meta` removed: exactly what
/// is fingerprinted), indented two spaces per level, one member or element per line.
pub fn pretty_canonical(tool: &[u8]) -> Result<String, pinning::CanonError> {
    let canon = pinning::canonical(tool)?;
    Ok(indent_compact_json(&String::from_utf8_lossy(&canon)))
}

/// Re-indents compact JSON text (no insignificant white space, as JCS writes it).
pub fn indent_compact_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = s.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    if let Some(cl) = chars.next() {
                        out.push(cl);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// A unified diff of two texts by lines (`---`/`+++` headers, `@@` hunks with three lines of
/// context); empty when they are equal.
pub fn line_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return Vec::new();
    }
    let ops = diff_ops(&a, &b);
    let mut out = vec![format!("--- {old_label}"), format!("+++ {new_label}")];
    // Indices of ops that are changes; hunks cover each change ± CONTEXT.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while let Some(&first) = changed.get(i) {
        let start = first.saturating_sub(CONTEXT);
        let mut end = first;
        while let Some(&next) = changed.get(i + 1) {
            if next <= end + 2 * CONTEXT + 1 {
                end = next;
                i += 1;
            } else {
                break;
            }
        }
        i += 1;
        let stop = (end + CONTEXT + 1).min(ops.len());
        let hunk = ops.get(start..stop).unwrap_or_default();
        let (a0, b0) = hunk.first().map_or((0, 0), Op::positions);
        let a_len = hunk.iter().filter(|o| !matches!(o, Op::Add(..))).count();
        let b_len = hunk.iter().filter(|o| !matches!(o, Op::Del(..))).count();
        // Unified-diff convention: an empty side is numbered by the line before it.
        let first = |pos: usize, len: usize| if len == 0 { pos } else { pos + 1 };
        out.push(format!(
            "@@ -{},{a_len} +{},{b_len} @@",
            first(a0, a_len),
            first(b0, b_len)
        ));
        for op in hunk {
            out.push(match op {
                Op::Same(x, _) => format!(" {}", a.get(*x).copied().unwrap_or_default()),
                Op::Del(x, _) => format!("-{}", a.get(*x).copied().unwrap_or_default()),
                Op::Add(_, y) => format!("+{}", b.get(*y).copied().unwrap_or_default()),
            });
        }
    }
    out
}

/// One step of an edit script, with the positions in both texts where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Line `a[i]` = `b[j]`.
    Same(usize, usize),
    /// `a[i]` removed (at `b[j]`).
    Del(usize, usize),
    /// `b[j]` added (at `a[i]`).
    Add(usize, usize),
}

impl Op {
    /// Where the op sits in `a` and in `b` (for hunk headers).
    fn positions(&self) -> (usize, usize) {
        match *self {
            Op::Same(i, j) | Op::Del(i, j) | Op::Add(i, j) => (i, j),
        }
    }
}

/// Longest-common-subsequence edit script, removals before additions (definitions are small;
/// past [`MAX_DIFF_CELLS`] the whole old text is removed and the whole new one added).
fn diff_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > MAX_DIFF_CELLS {
        return (0..n)
            .map(|i| Op::Del(i, 0))
            .chain((0..m).map(|j| Op::Add(n, j)))
            .collect();
    }
    // lcs[i * w + j]: length of the LCS of a[i..] and b[j..].
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    let get = |lcs: &[u32], i: usize, j: usize| lcs.get(i * w + j).copied().unwrap_or(0);
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if a.get(i) == b.get(j) {
                get(&lcs, i + 1, j + 1) + 1
            } else {
                get(&lcs, i + 1, j).max(get(&lcs, i, j + 1))
            };
            if let Some(cell) = lcs.get_mut(i * w + j) {
                *cell = v;
            }
        }
    }
    let mut ops = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a.get(i) == b.get(j) {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || get(&lcs, i + 1, j) >= get(&lcs, i, j + 1)) {
            ops.push(Op::Del(i, j));
            i += 1;
        } else {
            ops.push(Op::Add(i, j));
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests;
