//! `tools_list`: `mcp_core::tools_list::filter_list` against a serde_json-based reference.
//!
//! For a visibility predicate derived from each tool's name (and its complement), the output
//! must parse and equal the input with exactly the hidden entries removed (entries that are
//! not an object with one string `name` are always removed; with `set_private_cache` the
//! `cacheScope` rules of MCP 2026-07-28 apply), or the body is refused exactly where it is
//! ambiguous (a repeated `result`, or a repeated list key inside `result`) or where `skim`
//! refuses it. Without cache edits the output is the input with byte ranges deleted.

use mcp_core::json::{self, JsonError, Limits};
use mcp_core::tools_list::{filter_list, Edit, ListOptions};

use crate::jtree::{self, J};
use crate::util::{fnv, is_subsequence, show};

const LIMIT: usize = 64;

/// The visibility predicate: a pseudo-random half of all names; `salt` 1 is the complement.
pub fn visible(name: &str, salt: u64) -> bool {
    (fnv(name.as_bytes()) ^ salt) & 1 == 0
}

pub fn run(data: &[u8]) {
    for (salt, array_key, set_private_cache) in [
        (0, "tools", false),
        (1, "tools", true),
        (0, "prompts", true),
    ] {
        check(
            data,
            salt,
            &ListOptions {
                array_key,
                set_private_cache,
            },
        );
    }
}

/// What the reference expects.
#[derive(Debug)]
struct Expected {
    tree: J,
    kept: usize,
    removed: usize,
    found: bool,
    /// A cache edit applies (some `cacheScope`, or `ttlMs` without one, in a found result).
    cache_edit: bool,
    /// The body is ambiguous: a response repeats `result` or a result repeats the list key.
    ambiguous: bool,
}

fn expect(j: &J, opts: &ListOptions<'_>, salt: u64) -> Expected {
    let mut e = Expected {
        tree: j.clone(),
        kept: 0,
        removed: 0,
        found: false,
        cache_edit: false,
        ambiguous: false,
    };
    let mut tree = j.clone();
    match &mut tree {
        J::Obj(_) => response(&mut tree, opts, salt, &mut e),
        J::Arr(items) => {
            for item in items.iter_mut().filter(|i| matches!(i, J::Obj(_))) {
                response(item, opts, salt, &mut e);
            }
        }
        _ => {}
    }
    e.tree = tree;
    e
}

fn response(msg: &mut J, opts: &ListOptions<'_>, salt: u64, e: &mut Expected) {
    let J::Obj(members) = msg else { return };
    if members.iter().filter(|(k, _)| k == "result").count() > 1 {
        e.ambiguous = true;
        return;
    }
    let Some((_, result)) = members.iter_mut().find(|(k, _)| k == "result") else {
        return;
    };
    let J::Obj(rm) = result else { return };
    let lists = rm.iter().filter(|(k, _)| k == opts.array_key).count();
    if lists > 1 {
        e.ambiguous = true;
        return;
    }
    let mut found = false;
    for (k, v) in rm.iter_mut() {
        if k != opts.array_key {
            continue;
        }
        let J::Arr(items) = v else { continue };
        found = true;
        items.retain(|item| {
            let keep = match item {
                J::Obj(fields) => {
                    let mut names = fields.iter().filter(|(k, _)| k == "name");
                    match (names.next(), names.next()) {
                        (Some((_, J::Str(n))), None) => visible(n, salt),
                        _ => false,
                    }
                }
                _ => false,
            };
            if keep {
                e.kept += 1;
            } else {
                e.removed += 1;
            }
            keep
        });
    }
    e.found |= found;
    if found && opts.set_private_cache {
        let mut scopes = false;
        for (k, v) in rm.iter_mut() {
            if k == "cacheScope" {
                *v = J::Str("private".into());
                scopes = true;
            }
        }
        if scopes {
            e.cache_edit = true;
        } else if rm.iter().any(|(k, _)| k == "ttlMs") {
            rm.push(("cacheScope".into(), J::Str("private".into())));
            e.cache_edit = true;
        }
    }
}

fn check(data: &[u8], salt: u64, opts: &ListOptions<'_>) {
    let lim = Limits { max_depth: LIMIT };
    let ctx = || format!("{opts:?} salt {salt}: {}", show(data));
    let mut seen = Vec::new();
    let result = filter_list(data, opts, &lim, |n| {
        seen.push(n.to_owned());
        visible(n, salt)
    });
    let skimmed = json::skim(data, &lim);

    // Refusals: exactly skim's, plus ambiguity (reported as DuplicateKey of the key at fault).
    let edit: Edit = match (&result, &skimmed) {
        (Err(JsonError::DuplicateKey { key, .. }), _) => {
            assert!(
                key == "result" || key == opts.array_key,
                "DuplicateKey {key:?}, {}",
                ctx()
            );
            if let Ok(j) = jtree::parse(data) {
                let e = expect(&j, opts, salt);
                assert!(e.ambiguous, "refused an unambiguous body, {}", ctx());
            }
            return;
        }
        (Err(e), Err(s)) => {
            assert_eq!(
                std::mem::discriminant(e),
                std::mem::discriminant(s),
                "filter_list {e} vs skim {s}, {}",
                ctx()
            );
            return;
        }
        (Err(e), Ok(_)) => panic!("filter_list refused ({e}) what skim accepts, {}", ctx()),
        (Ok(_), Err(s)) => panic!("filter_list accepted what skim refuses ({s}), {}", ctx()),
        (Ok(edit), Ok(_)) => edit.clone(),
    };
    // The callback decides every kept element; removed ones were denied or malformed.
    assert_eq!(
        seen.iter().filter(|n| visible(n, salt)).count(),
        edit.kept,
        "kept, {}",
        ctx()
    );
    assert!(
        seen.len() <= edit.kept + edit.removed,
        "callback calls, {}",
        ctx()
    );
    let output = edit.bytes.clone().unwrap_or_else(|| data.to_vec());
    json::skim(&output, &lim).unwrap_or_else(|e| panic!("output refused by skim ({e}), {}", ctx()));
    if !opts.set_private_cache {
        assert!(
            is_subsequence(&output, data),
            "output is not the input minus ranges, {}",
            ctx()
        );
    }

    // Not UTF-8, or a number serde_json cannot hold: only the structural checks above apply.
    if let Ok(j) = jtree::parse(data) {
        let e = expect(&j, opts, salt);
        assert!(!e.ambiguous, "ambiguous body accepted, {}", ctx());
        assert_eq!(
            (edit.kept, edit.removed, edit.found),
            (e.kept, e.removed, e.found),
            "counts, {}",
            ctx()
        );
        let got = jtree::parse(&output)
            .unwrap_or_else(|err| panic!("output refused by serde_json ({err}), {}", ctx()));
        assert_eq!(got, e.tree, "output tree, {}", ctx());
        if edit.bytes.is_none() {
            assert_eq!(edit.removed, 0, "removed without new bytes, {}", ctx());
        } else {
            assert!(
                edit.removed > 0 || e.cache_edit,
                "new bytes for no reason, {}",
                ctx()
            );
        }
    }
}
