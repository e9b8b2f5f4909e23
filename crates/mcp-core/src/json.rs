//! A purpose-built JSON byte scanner with lazy, borrowed navigation.
//!
//! The filters run inside Envoy's V8, where building a `serde_json::Value` for every body
//! costs several times Envoy's own per-request CPU. This module instead:
//!
//! * checks one JSON text (RFC 8259) in a single iterative pass with an explicit stack (a
//!   1 MB `[[[[…` bomb fails at the depth limit without recursion), allocating only a small
//!   stack and one reusable list of object keys — nothing per token;
//! * hands back a [`Value`]: a view (kind + byte span) into the input. Navigation
//!   ([`Value::get`], [`Value::members`], [`Value::elements`]) re-scans the bytes on demand and
//!   borrows strings unless they contain escapes.
//!
//! Two entry points:
//!
//! * [`validate`] — strict, for client input: UTF-8 of the whole input (including raw bytes
//!   inside strings), escapes (a lone surrogate is refused: JavaScript keeps it, Python
//!   replaces or rejects it, so two parsers would disagree), raw control characters, number
//!   grammar, depth, and **duplicate object keys** compared after unescaping (JS and Python
//!   keep the last duplicate, a first-match reader would see another value: a classic parser
//!   differential).
//! * [`skim`] — for trusted-ish, large upstream responses. It checks the same structure,
//!   string/escape well-formedness, number and literal grammar and depth, but **skips**
//!   (1) duplicate-key detection and (2) UTF-8 validation: bytes ≥ 0x80 are accepted anywhere
//!   inside strings without checking that they form valid UTF-8. [`Value::as_str`] on such a
//!   string returns `None` when its bytes are not UTF-8, so callers fail closed.
//!
//! Navigation on a checked input assumes well-formedness but never panics: on anything
//! unexpected it returns `None` or ends the iteration.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// Resource limits applied while scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of nested containers (objects/arrays). `0` allows only scalars.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 64 }
    }
}

/// Longest key text (in chars) carried inside a [`JsonError::DuplicateKey`].
const MAX_ERROR_KEY_CHARS: usize = 64;

/// Why a JSON text was refused. Offsets are byte offsets into the scanned input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes do not follow the JSON grammar (including unterminated input, raw control
    /// characters in strings, bad escapes, bad numbers, a byte-order mark).
    #[error("JSON syntax error at byte {at}")]
    Syntax {
        /// Offset of the offending byte (or the input length when the text is truncated).
        at: usize,
    },
    /// Invalid UTF-8, or a `\u` escape that does not denote a Unicode scalar value
    /// (a lone surrogate).
    #[error("invalid UTF-8 or lone surrogate at byte {at}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte, or of the backslash of the bad escape.
        at: usize,
    },
    /// An object repeats a key (compared after unescaping).
    #[error("duplicate object key \"{key}\" at byte {at}")]
    DuplicateKey {
        /// Offset of the opening quote of the second occurrence.
        at: usize,
        /// The unescaped key, truncated to 64 chars.
        key: String,
    },
    /// Containers are nested deeper than [`Limits::max_depth`].
    #[error("JSON nesting deeper than {limit} at byte {at}")]
    TooDeep {
        /// Offset of the bracket that exceeded the limit.
        at: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Something other than whitespace follows the JSON value.
    #[error("trailing data after the JSON value at byte {at}")]
    TrailingData {
        /// Offset of the first non-whitespace byte after the value.
        at: usize,
    },
    /// The input is empty or only whitespace.
    #[error("empty JSON text")]
    Empty,
}

impl JsonError {
    /// The byte offset the error points at, if any.
    pub fn offset(&self) -> Option<usize> {
        match self {
            JsonError::Syntax { at }
            | JsonError::InvalidUtf8 { at }
            | JsonError::DuplicateKey { at, .. }
            | JsonError::TooDeep { at, .. }
            | JsonError::TrailingData { at } => Some(*at),
            JsonError::Empty => None,
        }
    }
}

/// The JSON type of a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// A number, kept as its exact text.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl Kind {
    fn of_first_byte(c: u8) -> Option<Kind> {
        match c {
            b'{' => Some(Kind::Object),
            b'[' => Some(Kind::Array),
            b'"' => Some(Kind::String),
            b't' | b'f' => Some(Kind::Bool),
            b'n' => Some(Kind::Null),
            b'-' | b'0'..=b'9' => Some(Kind::Number),
            _ => None,
        }
    }
}

/// A view of one value inside a checked input. Cheap to copy; all accessors borrow from the
/// input.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    root: &'a [u8],
    start: usize,
    end: usize,
    kind: Kind,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies can be megabytes: show only a prefix.
        let raw = self.raw();
        let shown = raw.get(..raw.len().min(64)).unwrap_or_default();
        f.debug_struct("Value")
            .field("kind", &self.kind)
            .field("span", &self.span())
            .field("raw", &String::from_utf8_lossy(shown))
            .finish()
    }
}

impl<'a> Value<'a> {
    fn at(root: &'a [u8], start: usize) -> Option<Value<'a>> {
        let kind = Kind::of_first_byte(*root.get(start)?)?;
        let end = value_end(root, start)?;
        Some(Value {
            root,
            start,
            end,
            kind,
        })
    }

    /// The JSON type of this value.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The exact bytes of this value (no surrounding whitespace).
    pub fn raw(&self) -> &'a [u8] {
        self.root.get(self.start..self.end).unwrap_or_default()
    }

    /// Offsets of [`Value::raw`] in the root input (the slice given to [`validate`]/[`skim`]),
    /// for byte splicing.
    pub fn span(&self) -> Range<usize> {
        self.start..self.end
    }

    /// The whole input this value lives in.
    pub fn input(&self) -> &'a [u8] {
        self.root
    }

    /// The unescaped string, if this is a string (borrowed unless it contains escapes).
    /// `None` for other kinds, and for skimmed strings whose bytes are not valid UTF-8.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if self.kind != Kind::String {
            return None;
        }
        let contents = string_contents(self.raw())?;
        unescape(contents).ok()
    }

    /// The number as an `i64`, if this is a number written as an integer that fits
    /// (`1e3` and `1.0` are not integers here; see [`Value::as_f64`]).
    pub fn as_i64(&self) -> Option<i64> {
        if self.kind != Kind::Number {
            return None;
        }
        std::str::from_utf8(self.raw()).ok()?.parse::<i64>().ok()
    }

    /// The number as an `f64` (nearest double), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        if self.kind != Kind::Number {
            return None;
        }
        std::str::from_utf8(self.raw()).ok()?.parse::<f64>().ok()
    }

    /// The boolean, if this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.raw() {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        self.kind == Kind::Null
    }

    /// The value of the first member whose unescaped key equals `key`, if this is an object.
    /// (A validated input has no duplicate keys; on a skimmed one the first match wins.)
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.raw_members()
            .find(|m| m.key_is(self.root, key))
            .map(|m| m.value)
    }

    /// The members of this object in input order (empty for other kinds).
    pub fn members(&self) -> Members<'a> {
        Members {
            inner: self.raw_members(),
        }
    }

    /// The elements of this array in input order (empty for other kinds).
    pub fn elements(&self) -> Elements<'a> {
        let pos = if self.kind == Kind::Array {
            Some(self.start + 1)
        } else {
            None
        };
        Elements {
            b: self.root,
            pos,
            first: true,
        }
    }

    pub(crate) fn raw_members(&self) -> RawMembers<'a> {
        let pos = if self.kind == Kind::Object {
            Some(self.start + 1)
        } else {
            None
        };
        RawMembers { b: self.root, pos }
    }
}

/// One `"key": value` member of an object.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// The unescaped key (lossily decoded if a skimmed key is not valid UTF-8).
    pub key: Cow<'a, str>,
    /// Offsets of the key token in the root input, quotes included.
    pub key_span: Range<usize>,
    /// The member's value.
    pub value: Value<'a>,
    /// From the key's opening quote to the end of the value.
    pub span: Range<usize>,
}

/// A member as found by the scanner, without decoding its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMember<'a> {
    /// Offset of the key's opening quote.
    pub key_start: usize,
    /// Offset just past the key's closing quote.
    pub key_end: usize,
    /// Whether the key contains a backslash.
    pub key_escaped: bool,
    pub value: Value<'a>,
}

impl<'a> RawMember<'a> {
    fn key_contents(&self, b: &'a [u8]) -> &'a [u8] {
        b.get(self.key_start + 1..self.key_end.saturating_sub(1))
            .unwrap_or_default()
    }

    /// Compares the unescaped key with `key` without allocating unless the key is escaped.
    pub fn key_is(&self, b: &[u8], key: &str) -> bool {
        key_matches(b, self.key_start, self.key_end, self.key_escaped, key)
    }

    fn decode(self, b: &'a [u8]) -> Member<'a> {
        let raw = self.key_contents(b);
        let key = match unescape(raw) {
            Ok(k) => k,
            Err(_) => String::from_utf8_lossy(raw),
        };
        Member {
            key,
            key_span: self.key_start..self.key_end,
            value: self.value,
            span: self.key_start..self.value.end,
        }
    }
}

/// Whether the key token `b[key_start..key_end]` (quotes included) unescapes to `key`;
/// allocates only when the key contains an escape.
pub(crate) fn key_matches(
    b: &[u8],
    key_start: usize,
    key_end: usize,
    escaped: bool,
    key: &str,
) -> bool {
    let raw = b
        .get(key_start + 1..key_end.saturating_sub(1))
        .unwrap_or_default();
    if !escaped {
        return raw == key.as_bytes();
    }
    // An escape never makes the text longer than its raw form.
    if raw.len() < key.len() {
        return false;
    }
    matches!(unescape(raw), Ok(k) if k == key)
}

/// Iterator over the raw members of an object.
#[derive(Debug, Clone)]
pub(crate) struct RawMembers<'a> {
    b: &'a [u8],
    /// Where to look for the next key (just after `{` or `,`); `None` once finished.
    pos: Option<usize>,
}

impl<'a> RawMembers<'a> {
    fn step(&mut self) -> Option<RawMember<'a>> {
        let b = self.b;
        let i = skip_ws(b, self.pos?);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, key_escaped) = string_end(b, i)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value = Value::at(b, skip_ws(b, colon + 1))?;
        let after = skip_ws(b, value.end);
        if b.get(after) == Some(&b',') {
            self.pos = Some(after + 1);
        } else {
            self.pos = None;
        }
        Some(RawMember {
            key_start: i,
            key_end,
            key_escaped,
            value,
        })
    }
}

impl<'a> Iterator for RawMembers<'a> {
    type Item = RawMember<'a>;
    fn next(&mut self) -> Option<RawMember<'a>> {
        let m = self.step();
        if m.is_none() {
            self.pos = None;
        }
        m
    }
}

/// Iterator over the members of an object; see [`Value::members`].
#[derive(Debug, Clone)]
pub struct Members<'a> {
    inner: RawMembers<'a>,
}

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        let b = self.inner.b;
        self.inner.next().map(|m| m.decode(b))
    }
}

/// Iterator over the elements of an array; see [`Value::elements`].
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    b: &'a [u8],
    pos: Option<usize>,
    first: bool,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        let b = self.b;
        let i = skip_ws(b, self.pos?);
        let first = std::mem::replace(&mut self.first, false);
        if first && b.get(i) == Some(&b']') {
            self.pos = None;
            return None;
        }
        let v = Value::at(b, i);
        self.pos = match v {
            Some(v) => {
                let after = skip_ws(b, v.end);
                (b.get(after) == Some(&b',')).then_some(after + 1)
            }
            None => None,
        };
        v
    }
}

/// Strict check of one JSON text (see the module docs); returns the root value.
pub fn validate<'a>(input: &'a [u8], limits: &Limits) -> Result<Value<'a>, JsonError> {
    if let Err(e) = std::str::from_utf8(input) {
        return Err(JsonError::InvalidUtf8 {
            at: e.valid_up_to(),
        });
    }
    scan(input, limits, true)
}

/// Cheaper structural check for trusted-ish upstream bodies: like [`validate`] but without
/// duplicate-key detection and without UTF-8 validation (see the module docs).
pub fn skim<'a>(input: &'a [u8], limits: &Limits) -> Result<Value<'a>, JsonError> {
    scan(input, limits, false)
}

/// Decodes the contents of a JSON string (the bytes between the quotes).
///
/// Borrows when there is no escape. Rejects invalid UTF-8, lone surrogates, bad escapes,
/// raw control characters and unescaped quotes; error offsets are relative to `raw`.
pub fn unescape(raw: &[u8]) -> Result<Cow<'_, str>, JsonError> {
    let first = find_string_special(raw, 0);
    if first == raw.len() {
        return match std::str::from_utf8(raw) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => Err(JsonError::InvalidUtf8 {
                at: e.valid_up_to(),
            }),
        };
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut special = first;
    loop {
        let run = raw.get(i..special).unwrap_or_default();
        match std::str::from_utf8(run) {
            Ok(s) => out.push_str(s),
            Err(e) => {
                return Err(JsonError::InvalidUtf8 {
                    at: i + e.valid_up_to(),
                })
            }
        }
        match raw.get(special) {
            None => return Ok(Cow::Owned(out)),
            Some(b'\\') => {
                let (c, next) = decode_escape(raw, special)?;
                out.push(c);
                i = next;
            }
            Some(_) => return Err(JsonError::Syntax { at: special }),
        }
        special = find_string_special(raw, i);
    }
}

/// Appends `s` as a JSON string literal (with quotes).
///
/// Escapes `"`, `\` and control characters, and also U+2028/U+2029 (legal in JSON but line
/// terminators in older JavaScript, so a reply could otherwise break a JS consumer). Other
/// non-ASCII text stays UTF-8.
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut last = 0;
    let mut i = find_escape_candidate(bytes, 0);
    while let Some(&c) = bytes.get(i) {
        let mut unicode_escape = [b'\\', b'u', b'0', b'0', b'0', b'0'];
        let (esc, width): (&[u8], usize) = match c {
            b'"' => (b"\\\"", 1),
            b'\\' => (b"\\\\", 1),
            b'\n' => (b"\\n", 1),
            b'\r' => (b"\\r", 1),
            b'\t' => (b"\\t", 1),
            0x08 => (b"\\b", 1),
            0x0c => (b"\\f", 1),
            0x00..=0x1f => {
                if let Some(d) = unicode_escape.get_mut(4) {
                    *d = HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0');
                }
                if let Some(d) = unicode_escape.get_mut(5) {
                    *d = HEX.get(usize::from(c & 0xf)).copied().unwrap_or(b'0');
                }
                (&unicode_escape[..], 1)
            }
            0xE2 if bytes.get(i + 1) == Some(&0x80) => match bytes.get(i + 2) {
                Some(0xA8) => (b"\\u2028", 3),
                Some(0xA9) => (b"\\u2029", 3),
                _ => {
                    i = find_escape_candidate(bytes, i + 1);
                    continue;
                }
            },
            _ => {
                i = find_escape_candidate(bytes, i + 1);
                continue;
            }
        };
        out.extend_from_slice(bytes.get(last..i).unwrap_or_default());
        out.extend_from_slice(esc);
        i += width;
        last = i;
        i = find_escape_candidate(bytes, i);
    }
    out.extend_from_slice(bytes.get(last..).unwrap_or_default());
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------
// Scanner internals

#[inline]
pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        } else {
            break;
        }
    }
    i
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in the bytes of `w` equal to `c`. Exact for the lowest such byte; a borrow can
/// also flag a higher byte, so only the lowest flag of a word may be trusted.
#[inline(always)]
fn bytes_eq(w: u64, c: u8) -> u64 {
    let x = w ^ (LO * u64::from(c));
    x.wrapping_sub(LO) & !x & HI
}

/// High bit set in the bytes of `w` below `0x20` (control characters); same caveat.
#[inline(always)]
fn bytes_control(w: u64) -> u64 {
    w.wrapping_sub(LO * 0x20) & !w & HI
}

/// Index of the first byte at or after `i` for which `hit` holds, or `b.len()`. Eight bytes at
/// a time (SWAR): `flags` must mark, in the high bit of each byte, at least the lowest byte of a
/// word for which `hit` holds and no lower one (strings are most of an MCP body).
#[inline(always)]
fn find_byte(
    b: &[u8],
    mut i: usize,
    flags: impl Fn(u64) -> u64,
    hit: impl Fn(u8) -> bool,
) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let m = flags(u64::from_le_bytes(arr));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if hit(c) {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// The first `"`, `\` or control character at or after `i`, or `b.len()`.
#[inline]
fn find_string_special(b: &[u8], i: usize) -> usize {
    find_byte(
        b,
        i,
        |w| bytes_eq(w, b'"') | bytes_eq(w, b'\\') | bytes_control(w),
        |c| c == b'"' || c == b'\\' || c < 0x20,
    )
}

/// The first byte at or after `i` that [`write_escaped`] may have to escape (`"`, `\\`, a
/// control character, or `0xE2`, the lead byte of U+2028/U+2029), or `b.len()`: runs of
/// ordinary text are copied whole.
fn find_escape_candidate(b: &[u8], i: usize) -> usize {
    find_byte(
        b,
        i,
        |w| bytes_eq(w, b'"') | bytes_eq(w, b'\\') | bytes_eq(w, 0xE2) | bytes_control(w),
        |c| c == b'"' || c == b'\\' || c < 0x20 || c == 0xE2,
    )
}

/// The first `"` or `\\` at or after `i` (`b.len()` if none): what ends a string that was
/// already validated, so control characters need not be looked for.
fn find_quote_or_backslash(b: &[u8], i: usize) -> usize {
    find_byte(
        b,
        i,
        |w| bytes_eq(w, b'"') | bytes_eq(w, b'\\'),
        |c| c == b'"' || c == b'\\',
    )
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = (v << 4) | char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Checks the escape whose backslash is at `i`; returns the offset after it.
fn check_escape(b: &[u8], i: usize) -> Result<usize, JsonError> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            let cu = hex4(b, i + 2).ok_or(JsonError::Syntax { at: i })?;
            if (0xD800..0xDC00).contains(&cu) {
                if b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u') {
                    let lo = hex4(b, i + 8).ok_or(JsonError::Syntax { at: i + 6 })?;
                    if (0xDC00..0xE000).contains(&lo) {
                        return Ok(i + 12);
                    }
                }
                Err(JsonError::InvalidUtf8 { at: i })
            } else if (0xDC00..0xE000).contains(&cu) {
                Err(JsonError::InvalidUtf8 { at: i })
            } else {
                Ok(i + 6)
            }
        }
        _ => Err(JsonError::Syntax { at: i }),
    }
}

/// Decodes the escape whose backslash is at `i`; returns the char and the offset after it.
fn decode_escape(b: &[u8], i: usize) -> Result<(char, usize), JsonError> {
    let next = check_escape(b, i)?;
    let c = match b.get(i + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        _ => {
            let hi = hex4(b, i + 2).ok_or(JsonError::Syntax { at: i })?;
            let code = if next == i + 12 {
                let lo = hex4(b, i + 8).ok_or(JsonError::Syntax { at: i })?;
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            } else {
                hi
            };
            char::from_u32(code).ok_or(JsonError::InvalidUtf8 { at: i })?
        }
    };
    Ok((c, next))
}

/// Strictly scans the string whose opening quote is at `start`.
/// Returns (offset after the closing quote, whether it contains an escape).
pub(crate) fn scan_string(b: &[u8], start: usize) -> Result<(usize, bool), JsonError> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        i = find_string_special(b, i);
        match b.get(i) {
            None => return Err(JsonError::Syntax { at: b.len() }),
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                i = check_escape(b, i)?;
            }
            Some(_) => return Err(JsonError::Syntax { at: i }),
        }
    }
}

/// Lenient: the end of the (already checked) string whose opening quote is at `start`.
pub(crate) fn string_end(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        i = find_quote_or_backslash(b, i);
        match b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// Lenient: the end of the (already checked) value starting at `i`.
pub(crate) fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i).map(|(e, _)| e),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        b't' | b'n' => Some((i + 4).min(b.len())),
        b'f' => Some((i + 5).min(b.len())),
        _ => {
            let mut j = i;
            while matches!(
                b.get(j),
                Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            ) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

fn string_contents(raw: &[u8]) -> Option<&[u8]> {
    raw.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    i
}

/// Scans a number per the RFC 8259 grammar; returns the offset after it.
fn scan_number(b: &[u8], start: usize) -> Result<usize, JsonError> {
    let mut i = start;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => {
            i += 1;
            if matches!(b.get(i), Some(b'0'..=b'9')) {
                return Err(JsonError::Syntax { at: i });
            }
        }
        Some(b'1'..=b'9') => i = skip_digits(b, i),
        _ => return Err(JsonError::Syntax { at: i }),
    }
    if b.get(i) == Some(&b'.') {
        let j = skip_digits(b, i + 1);
        if j == i + 1 {
            return Err(JsonError::Syntax { at: j });
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = skip_digits(b, i);
        if j == i {
            return Err(JsonError::Syntax { at: j });
        }
        i = j;
    }
    Ok(i)
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    object: bool,
    /// Index in the key list where this object's keys start.
    keys_start: usize,
}

#[derive(Debug, Clone, Copy)]
struct KeyRec {
    /// Offset of the opening quote.
    quote: usize,
    /// Offset just past the closing quote.
    end: usize,
    escaped: bool,
}

impl KeyRec {
    fn contents<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        b.get(self.quote + 1..self.end.saturating_sub(1))
            .unwrap_or_default()
    }
}

/// Scans `"key"` + `:` at `i` (after whitespace); returns the offset of the value.
fn scan_key(b: &[u8], i: usize, keys: Option<&mut Vec<KeyRec>>) -> Result<usize, JsonError> {
    if b.get(i) != Some(&b'"') {
        return Err(JsonError::Syntax { at: i });
    }
    let (end, escaped) = scan_string(b, i)?;
    if let Some(keys) = keys {
        keys.push(KeyRec {
            quote: i,
            end,
            escaped,
        });
    }
    let colon = skip_ws(b, end);
    if b.get(colon) != Some(&b':') {
        return Err(JsonError::Syntax { at: colon });
    }
    Ok(skip_ws(b, colon + 1))
}

fn keys_equal(b: &[u8], x: &KeyRec, y: &KeyRec) -> bool {
    let (xr, yr) = (x.contents(b), y.contents(b));
    if !x.escaped && !y.escaped {
        return xr == yr;
    }
    match (unescape(xr), unescape(yr)) {
        (Ok(a), Ok(c)) => a == c,
        _ => false,
    }
}

fn duplicate_error(b: &[u8], k: &KeyRec) -> JsonError {
    let key = match unescape(k.contents(b)) {
        Ok(s) => s.chars().take(MAX_ERROR_KEY_CHARS).collect(),
        Err(_) => String::new(),
    };
    JsonError::DuplicateKey { at: k.quote, key }
}

/// Objects at most this large are checked pairwise; larger ones are sorted (quadratic
/// checking would let a 1 MB object of short keys burn seconds).
const PAIRWISE_MAX: usize = 16;

fn check_duplicates(b: &[u8], keys: &[KeyRec]) -> Result<(), JsonError> {
    if keys.len() <= PAIRWISE_MAX {
        for (j, later) in keys.iter().enumerate() {
            let earlier = keys.get(..j).unwrap_or_default();
            if earlier.iter().any(|e| keys_equal(b, e, later)) {
                return Err(duplicate_error(b, later));
            }
        }
        return Ok(());
    }
    let mut decoded: Vec<(Cow<'_, str>, usize)> = Vec::with_capacity(keys.len());
    for (idx, k) in keys.iter().enumerate() {
        // The string was checked already; a decoding failure is impossible here but must
        // not panic, so treat it as a syntax error at the key.
        let s = unescape(k.contents(b)).map_err(|_| JsonError::Syntax { at: k.quote })?;
        decoded.push((s, idx));
    }
    decoded.sort_unstable();
    let first_dup = decoded
        .windows(2)
        .filter_map(|w| match w {
            [(a, _), (c, later)] if a == c => Some(*later),
            _ => None,
        })
        .min();
    match first_dup.and_then(|idx| keys.get(idx)) {
        Some(k) => Err(duplicate_error(b, k)),
        None => Ok(()),
    }
}

fn scan_literal(b: &[u8], i: usize, lit: &[u8]) -> Result<usize, JsonError> {
    if b.get(i..i + lit.len()) == Some(lit) {
        Ok(i + lit.len())
    } else {
        Err(JsonError::Syntax { at: i })
    }
}

fn scan<'a>(b: &'a [u8], limits: &Limits, strict: bool) -> Result<Value<'a>, JsonError> {
    let start = skip_ws(b, 0);
    let kind = match b.get(start) {
        None => return Err(JsonError::Empty),
        Some(&c) => Kind::of_first_byte(c).ok_or(JsonError::Syntax { at: start })?,
    };
    let end = scan_value(b, start, limits.max_depth, strict, &mut Scratch::default())?;
    let after = skip_ws(b, end);
    if after != b.len() {
        return Err(JsonError::TrailingData { at: after });
    }
    Ok(Value {
        root: b,
        start,
        end,
        kind,
    })
}

/// Reusable buffers of [`scan_value`], so that scanning many small values allocates once.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    stack: Vec<Frame>,
    keys: Vec<KeyRec>,
}

/// Checks the one value starting at `start` (no leading whitespace) allowing `max_depth`
/// nested containers; returns the offset just past it. Whatever follows is not looked at.
pub(crate) fn scan_value(
    b: &[u8],
    start: usize,
    max_depth: usize,
    strict: bool,
    scratch: &mut Scratch,
) -> Result<usize, JsonError> {
    let limits = Limits { max_depth };
    let mut i = start;
    let Scratch { stack, keys } = scratch;
    stack.clear();
    keys.clear();
    'value: loop {
        // A value is expected at `i`.
        let c = *b.get(i).ok_or(JsonError::Syntax { at: i })?;
        match c {
            b'{' | b'[' => {
                if stack.len() >= limits.max_depth {
                    return Err(JsonError::TooDeep {
                        at: i,
                        limit: limits.max_depth,
                    });
                }
                let object = c == b'{';
                stack.push(Frame {
                    object,
                    keys_start: keys.len(),
                });
                i = skip_ws(b, i + 1);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    stack.pop();
                    i += 1;
                } else if object {
                    i = scan_key(b, i, strict.then_some(&mut *keys))?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b'"' => i = scan_string(b, i)?.0,
            b't' => i = scan_literal(b, i, b"true")?,
            b'f' => i = scan_literal(b, i, b"false")?,
            b'n' => i = scan_literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = scan_number(b, i)?,
            _ => return Err(JsonError::Syntax { at: i }),
        }
        // After a value: close containers or move to the next element/member.
        loop {
            let value_end = i;
            i = skip_ws(b, i);
            let Some(top) = stack.last().copied() else {
                return Ok(value_end);
            };
            match (b.get(i), top.object) {
                (Some(b','), true) => {
                    i = scan_key(b, skip_ws(b, i + 1), strict.then_some(&mut *keys))?;
                    continue 'value;
                }
                (Some(b','), false) => {
                    i = skip_ws(b, i + 1);
                    continue 'value;
                }
                (Some(b'}'), true) => {
                    stack.pop();
                    if strict {
                        check_duplicates(b, keys.get(top.keys_start..).unwrap_or_default())?;
                        keys.truncate(top.keys_start);
                    }
                    i += 1;
                }
                (Some(b']'), false) => {
                    stack.pop();
                    i += 1;
                }
                _ => return Err(JsonError::Syntax { at: i }),
            }
        }
    }
}
