//! Byte-splicing filter for `tools/list` (and `prompts/list`) results.
//!
//! A list response can be 100 KB+; parsing it into a tree and re-serializing costs several
//! times Envoy's own CPU per request inside V8. Instead the body is walked once, checking it
//! with the same rules as [`json::skim`] while reading each element's `name`, and the output
//! is built by copying the kept byte ranges into one buffer. Nothing is re-serialized: ids, `nextCursor`,
//! `_meta`, unknown fields, kept elements and whitespace stay byte-identical.
//!
//! Fail-closed rules: an element that is not an object, lacks a string `name`, has a `name`
//! that is not valid UTF-8, or repeats the `name` key is removed (and counted). A response
//! that repeats `result`, or a result that repeats the array key, is refused with
//! [`JsonError::DuplicateKey`]: a client would read the last copy while a first-match filter
//! edits the first one.
//!
//! MCP 2026-07-28 caching (`server/utilities/caching`): "private" is the scope for "filtered
//! list results that vary per user", so with [`ListOptions::set_private_cache`] an existing
//! `cacheScope` is rewritten to `"private"`, and a result that has `ttlMs` but no
//! `cacheScope` gets one appended; `ttlMs` is kept.

use std::ops::Range;

use crate::json::{
    self, key_matches, scan_string, scan_value, skip_ws, JsonError, Limits, Scratch,
};

/// The outcome of [`filter_list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edit {
    /// Elements kept.
    pub kept: usize,
    /// Elements removed (denied by the callback or malformed).
    pub removed: usize,
    /// Whether the body had the list at all (a response whose `result` holds the array).
    pub found: bool,
    /// The new body, or `None` when nothing changed (or the body has no such list).
    pub bytes: Option<Vec<u8>>,
}

/// What to filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions<'p> {
    /// The array member of `result`: `"tools"` or `"prompts"`.
    pub array_key: &'p str,
    /// Mark the result `cacheScope: "private"` (see the module docs).
    pub set_private_cache: bool,
}

const PRIVATE: &[u8] = b"\"private\"";
const CACHE_SCOPE_PRIVATE_MEMBER: &[u8] = b",\"cacheScope\":\"private\"";

/// `body` is one JSON-RPC response object (a JSON body, or one SSE event's data); a batch
/// (a JSON array of responses, allowed by 2025-03-26) is handled element by element.
/// Removes every element of `result.<array_key>` for which `keep(name)` is false (`name` =
/// the element's unescaped `"name"` member). Every other byte is preserved exactly; commas
/// are fixed so the output stays valid JSON. See the module docs for the fail-closed rules and
/// caching. Returns `bytes: None` when nothing changed or when the body is not a response with
/// that array (an error response, another result).
pub fn filter_list(
    body: &[u8],
    opts: &ListOptions<'_>,
    limits: &Limits,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Edit, JsonError> {
    filter_list_with(body, opts, limits, |name, _| keep(name))
}

/// [`filter_list`] whose callback also gets each element's exact bytes (`{` to `}`), for
/// decisions on the whole definition (tool pinning).
pub fn filter_list_with(
    body: &[u8],
    opts: &ListOptions<'_>,
    limits: &Limits,
    mut keep: impl FnMut(&str, &[u8]) -> bool,
) -> Result<Edit, JsonError> {
    let start = skip_ws(body, 0);
    let Some(&first) = body.get(start) else {
        return Err(JsonError::Empty);
    };
    let mut f = Filter {
        b: body,
        opts,
        keep: &mut keep,
        max_depth: limits.max_depth,
        scratch: Scratch::default(),
        edits: Vec::new(),
        kept: 0,
        removed: 0,
        found: false,
    };
    let end = match first {
        b'{' => f.response(start, 0)?,
        b'[' => f.batch(start)?,
        _ => f.skip(start, 0)?,
    };
    let after = skip_ws(body, end);
    if after != body.len() {
        return Err(JsonError::TrailingData { at: after });
    }
    let Filter {
        edits,
        kept,
        removed,
        found,
        ..
    } = f;
    Ok(Edit {
        kept,
        removed,
        found,
        bytes: splice(body, edits),
    })
}

/// One replacement of `range` by `with` (empty `with` = deletion, empty range = insertion).
#[derive(Debug)]
struct Splice {
    range: Range<usize>,
    with: &'static [u8],
}

fn splice(body: &[u8], mut edits: Vec<Splice>) -> Option<Vec<u8>> {
    if edits.is_empty() {
        return None;
    }
    // Cache edits may precede the array in the result; everything else arrives in order.
    edits.sort_by_key(|e| e.range.start);
    let mut out = Vec::with_capacity(body.len() + CACHE_SCOPE_PRIVATE_MEMBER.len());
    let mut copied = 0;
    for e in &edits {
        out.extend_from_slice(body.get(copied..e.range.start).unwrap_or_default());
        out.extend_from_slice(e.with);
        copied = copied.max(e.range.end);
    }
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
    Some(out)
}

/// A key found by [`ObjWalk`].
#[derive(Debug, Clone, Copy)]
struct KeyAt {
    start: usize,
    end: usize,
    escaped: bool,
    value: usize,
}

/// Walks an object's members without computing value ends up front, so a member's value can
/// be descended into and skipped in the same pass.
#[derive(Debug)]
struct ObjWalk<'a> {
    b: &'a [u8],
    pos: usize,
    first: bool,
}

impl<'a> ObjWalk<'a> {
    fn new(b: &'a [u8], open: usize) -> Self {
        ObjWalk {
            b,
            pos: open + 1,
            first: true,
        }
    }

    /// The next key, or `Err(end)`-style completion: `Ok(Err(end))` gives the offset just
    /// past the closing brace.
    fn next_key(&mut self) -> Result<Result<KeyAt, usize>, JsonError> {
        let b = self.b;
        let mut i = skip_ws(b, self.pos);
        if std::mem::replace(&mut self.first, false) {
            if b.get(i) == Some(&b'}') {
                return Ok(Err(i + 1));
            }
        } else {
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => return Ok(Err(i + 1)),
                _ => return Err(JsonError::Syntax { at: i }),
            }
        }
        if b.get(i) != Some(&b'"') {
            return Err(JsonError::Syntax { at: i });
        }
        let (end, escaped) = scan_string(b, i)?;
        let colon = skip_ws(b, end);
        if b.get(colon) != Some(&b':') {
            return Err(JsonError::Syntax { at: colon });
        }
        Ok(Ok(KeyAt {
            start: i,
            end,
            escaped,
            value: skip_ws(b, colon + 1),
        }))
    }

    fn is(&self, k: &KeyAt, key: &str) -> bool {
        key_matches(self.b, k.start, k.end, k.escaped, key)
    }

    /// Records where the current member's value ended.
    fn value_done(&mut self, end: usize) {
        self.pos = end;
    }
}

fn duplicate(at: usize, key: &str) -> JsonError {
    JsonError::DuplicateKey {
        at,
        key: key.chars().take(64).collect(),
    }
}

struct Filter<'a, 'o, 'k, K: FnMut(&str, &[u8]) -> bool> {
    b: &'a [u8],
    opts: &'o ListOptions<'o>,
    keep: &'k mut K,
    max_depth: usize,
    scratch: Scratch,
    edits: Vec<Splice>,
    kept: usize,
    removed: usize,
    found: bool,
}

// In the walkers below, `outer` is the number of containers open around the value at `at`,
// so that the depth limit means exactly what it means for `json::skim`.
impl<K: FnMut(&str, &[u8]) -> bool> Filter<'_, '_, '_, K> {
    /// Checks (skim rules) and skips the value at `at`; returns the offset after it.
    fn skip(&mut self, at: usize, outer: usize) -> Result<usize, JsonError> {
        let room = self.max_depth.saturating_sub(outer);
        scan_value(self.b, at, room, false, &mut self.scratch)
    }

    /// Refuses to open a container at `at` beyond the depth limit.
    fn open(&self, at: usize, outer: usize) -> Result<(), JsonError> {
        if outer >= self.max_depth {
            return Err(JsonError::TooDeep {
                at,
                limit: self.max_depth,
            });
        }
        Ok(())
    }

    /// A top-level array: a batch of responses.
    fn batch(&mut self, open: usize) -> Result<usize, JsonError> {
        let b = self.b;
        self.open(open, 0)?;
        let mut i = skip_ws(b, open + 1);
        if b.get(i) == Some(&b']') {
            return Ok(i + 1);
        }
        loop {
            let end = if b.get(i) == Some(&b'{') {
                self.response(i, 1)?
            } else {
                self.skip(i, 1)?
            };
            let after = skip_ws(b, end);
            match b.get(after) {
                Some(b',') => i = skip_ws(b, after + 1),
                Some(b']') => return Ok(after + 1),
                _ => return Err(JsonError::Syntax { at: after }),
            }
        }
    }

    /// Walks one response object starting at `open`; returns the offset after it.
    fn response(&mut self, open: usize, outer: usize) -> Result<usize, JsonError> {
        let b = self.b;
        self.open(open, outer)?;
        let mut w = ObjWalk::new(b, open);
        let mut seen_result = false;
        loop {
            let k = match w.next_key()? {
                Ok(k) => k,
                Err(end) => return Ok(end),
            };
            let end = if w.is(&k, "result") {
                if std::mem::replace(&mut seen_result, true) {
                    return Err(duplicate(k.start, "result"));
                }
                self.result(k.value, outer + 1)?
            } else {
                self.skip(k.value, outer + 1)?
            };
            w.value_done(end);
        }
    }

    /// Walks `result` at `at`; returns the offset after it.
    fn result(&mut self, at: usize, outer: usize) -> Result<usize, JsonError> {
        let b = self.b;
        if b.get(at) != Some(&b'{') {
            return self.skip(at, outer);
        }
        self.open(at, outer)?;
        let mut w = ObjWalk::new(b, at);
        let mut seen_array = false;
        let mut found_array = false;
        let mut has_ttl = false;
        let mut cache_scopes: Vec<Range<usize>> = Vec::new();
        let mut last_value_end = at + 1;
        let result_end = loop {
            let k = match w.next_key()? {
                Ok(k) => k,
                Err(end) => break end,
            };
            let end = if w.is(&k, self.opts.array_key) {
                if std::mem::replace(&mut seen_array, true) {
                    return Err(duplicate(k.start, self.opts.array_key));
                }
                if b.get(k.value) == Some(&b'[') {
                    found_array = true;
                    self.array(k.value, outer + 1)?
                } else {
                    self.skip(k.value, outer + 1)?
                }
            } else {
                let end = self.skip(k.value, outer + 1)?;
                if w.is(&k, "cacheScope") {
                    cache_scopes.push(k.value..end);
                } else if w.is(&k, "ttlMs") {
                    has_ttl = true;
                }
                end
            };
            last_value_end = end;
            w.value_done(end);
        };
        self.found |= found_array;
        if found_array && self.opts.set_private_cache {
            if cache_scopes.is_empty() {
                if has_ttl {
                    self.edits.push(Splice {
                        range: last_value_end..last_value_end,
                        with: CACHE_SCOPE_PRIVATE_MEMBER,
                    });
                }
            } else {
                for range in cache_scopes {
                    if b.get(range.clone()) != Some(PRIVATE) {
                        self.edits.push(Splice {
                            range,
                            with: PRIVATE,
                        });
                    }
                }
            }
        }
        Ok(result_end)
    }

    /// Filters the array whose `[` is at `open`; returns the offset after its `]`.
    fn array(&mut self, open: usize, outer: usize) -> Result<usize, JsonError> {
        let b = self.b;
        self.open(open, outer)?;
        let mut i = skip_ws(b, open + 1);
        if b.get(i) == Some(&b']') {
            return Ok(i + 1);
        }
        let mut kept_any = false;
        // Start of a run of removed elements that precede every kept one: removed up to the
        // next kept element's start (taking the comma after them), or to the last end.
        let mut pending: Option<usize> = None;
        let mut prev_end = i;
        loop {
            let start = i;
            let (end, keep_it) = self.element(start, outer + 1)?;
            if keep_it {
                self.kept += 1;
                if let Some(p) = pending.take() {
                    self.delete(p..start);
                }
                kept_any = true;
            } else {
                self.removed += 1;
                if kept_any {
                    // Take the comma (and whitespace) before the element with it.
                    self.delete(prev_end..end);
                } else if pending.is_none() {
                    pending = Some(start);
                }
            }
            prev_end = end;
            let after = skip_ws(b, end);
            match b.get(after) {
                Some(b',') => i = skip_ws(b, after + 1),
                Some(b']') => {
                    if let Some(p) = pending {
                        self.delete(p..end);
                    }
                    return Ok(after + 1);
                }
                _ => return Err(JsonError::Syntax { at: after }),
            }
        }
    }

    fn delete(&mut self, range: Range<usize>) {
        self.edits.push(Splice { range, with: b"" });
    }

    /// Reads one element's `name` while skipping to its end; returns (end, keep?).
    fn element(&mut self, at: usize, outer: usize) -> Result<(usize, bool), JsonError> {
        let b = self.b;
        if b.get(at) != Some(&b'{') {
            return Ok((self.skip(at, outer)?, false));
        }
        self.open(at, outer)?;
        let mut w = ObjWalk::new(b, at);
        let mut names = 0usize;
        let mut name_at = None;
        let end = loop {
            let k = match w.next_key()? {
                Ok(k) => k,
                Err(end) => break end,
            };
            let end = self.skip(k.value, outer + 1)?;
            if w.is(&k, "name") {
                names += 1;
                name_at = Some(k.value..end);
            }
            w.value_done(end);
        };
        let name = match (names, name_at) {
            (1, Some(r)) => b
                .get(r)
                .and_then(|raw| raw.strip_prefix(b"\"")?.strip_suffix(b"\""))
                .and_then(|contents| json::unescape(contents).ok()),
            _ => None,
        };
        let keep_it = match name {
            Some(n) => (self.keep)(&n, b.get(at..end).unwrap_or_default()),
            None => false,
        };
        Ok((end, keep_it))
    }
}
