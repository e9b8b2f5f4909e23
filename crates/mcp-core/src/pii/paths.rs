//! The JSONPath subset of `include_paths` / `exclude_paths`, evaluated against the path of each
//! node the scrubber visits (no document-wide JSONPath evaluation on the data path).
//!
//! Supported: `$` (the JSON-RPC message), `.name`, `['name']` / `["name"]`, `.*` / `[*]`,
//! `[n]` (array index, n ≥ 0), `..name` / `..*` (descendants). A path selects nodes; selecting
//! a node selects every string below it. Filters (`?()`), slices, unions, negative indexes and
//! functions are refused at configuration time.

use std::borrow::Cow;

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `.name` / `['name']`.
    Child(String),
    /// `.*` / `[*]`.
    AnyChild,
    /// `[n]`.
    Index(usize),
    /// `..name`: any descendant (at any depth ≥ 1) named `name`.
    Descendant(String),
    /// `..*`: any descendant.
    AnyDescendant,
}

/// A compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// One segment of the path of a visited node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg<'a> {
    /// An object member.
    Key(Cow<'a, str>),
    /// An array element.
    Index(usize),
}

/// How a path relates to a node's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relation {
    /// The path selects this node.
    pub selects: bool,
    /// The path may select this node or a node below it.
    pub viable: bool,
}

impl JsonPath {
    /// Parses the supported subset; the error says what is wrong.
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        let b = src.as_bytes();
        if b.first() != Some(&b'$') {
            return Err("must start with `$`".into());
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while let Some(&c) = b.get(i) {
            match c {
                b'.' => {
                    let desc = b.get(i + 1) == Some(&b'.');
                    i += if desc { 2 } else { 1 };
                    if b.get(i) == Some(&b'*') {
                        i += 1;
                        steps.push(if desc {
                            Step::AnyDescendant
                        } else {
                            Step::AnyChild
                        });
                        continue;
                    }
                    if desc && b.get(i) == Some(&b'[') {
                        let (name, next) = bracket(src, i)?;
                        i = next;
                        match name {
                            Bracket::Name(n) => steps.push(Step::Descendant(n)),
                            Bracket::Any => steps.push(Step::AnyDescendant),
                            Bracket::Index(_) => {
                                return Err("`..[n]` is not supported".into());
                            }
                        }
                        continue;
                    }
                    let start = i;
                    while let Some(&c) = b.get(i) {
                        if c == b'.' || c == b'[' {
                            break;
                        }
                        if !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'$' | b'/'))
                            && c < 0x80
                        {
                            return Err(format!(
                                "unexpected `{}` in a member name (use ['…'] for other characters)",
                                char::from(c)
                            ));
                        }
                        i += 1;
                    }
                    let name = src.get(start..i).unwrap_or_default();
                    if name.is_empty() {
                        return Err("empty member name".into());
                    }
                    steps.push(if desc {
                        Step::Descendant(name.to_owned())
                    } else {
                        Step::Child(name.to_owned())
                    });
                }
                b'[' => {
                    let (sel, next) = bracket(src, i)?;
                    i = next;
                    steps.push(match sel {
                        Bracket::Name(n) => Step::Child(n),
                        Bracket::Any => Step::AnyChild,
                        Bracket::Index(n) => Step::Index(n),
                    });
                }
                _ => return Err(format!("unexpected `{}`", char::from(c))),
            }
        }
        Ok(JsonPath { steps })
    }

    /// How this path relates to the node at `path`.
    pub fn relate(&self, path: &[Seg<'_>]) -> Relation {
        relate(&self.steps, path)
    }
}

enum Bracket {
    Name(String),
    Any,
    Index(usize),
}

/// Parses `[...]` starting at `i` (the `[`); returns the selector and the index after `]`.
fn bracket(src: &str, i: usize) -> Result<(Bracket, usize), String> {
    let b = src.as_bytes();
    let inner_start = i + 1;
    match b.get(inner_start) {
        Some(&q @ (b'\'' | b'"')) => {
            let mut j = inner_start + 1;
            let mut name = String::new();
            loop {
                match b.get(j) {
                    None => return Err("unterminated quoted name".into()),
                    Some(&c) if c == q => break,
                    Some(b'\\') => {
                        let e = b.get(j + 1).copied().ok_or("unterminated escape")?;
                        name.push(char::from(e));
                        j += 2;
                    }
                    Some(_) => {
                        let ch = src.get(j..).and_then(|s| s.chars().next()).ok_or("bad text")?;
                        name.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            if b.get(j + 1) != Some(&b']') {
                return Err("expected `]` after a quoted name (unions are not supported)".into());
            }
            Ok((Bracket::Name(name), j + 2))
        }
        Some(b'*') => {
            if b.get(inner_start + 1) != Some(&b']') {
                return Err("expected `]` after `*`".into());
            }
            Ok((Bracket::Any, inner_start + 2))
        }
        Some(c) if c.is_ascii_digit() => {
            let mut j = inner_start;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if b.get(j) != Some(&b']') {
                return Err("only `[n]`, `[*]` and `['name']` are supported (no slices, unions or filters)".into());
            }
            let n = src
                .get(inner_start..j)
                .and_then(|s| s.parse().ok())
                .ok_or("index too large")?;
            Ok((Bracket::Index(n), j + 1))
        }
        _ => Err(
            "only `[n]`, `[*]` and `['name']` are supported (no filters, slices, unions or negative indexes)"
                .into(),
        ),
    }
}

fn seg_is_key(s: &Seg<'_>, name: &str) -> bool {
    matches!(s, Seg::Key(k) if k == name)
}

fn relate(steps: &[Step], path: &[Seg<'_>]) -> Relation {
    let Some((step, rest)) = steps.split_first() else {
        let end = path.is_empty();
        return Relation {
            selects: end,
            viable: end,
        };
    };
    let Some((seg, path_rest)) = path.split_first() else {
        // The node is an ancestor of what this path could select.
        return Relation {
            selects: false,
            viable: true,
        };
    };
    match step {
        Step::Child(name) if seg_is_key(seg, name) => relate(rest, path_rest),
        Step::AnyChild => relate(rest, path_rest),
        Step::Index(n) if *seg == Seg::Index(*n) => relate(rest, path_rest),
        Step::Child(_) | Step::Index(_) => Relation::default(),
        Step::Descendant(_) | Step::AnyDescendant => {
            let mut out = Relation {
                selects: false,
                // A descendant step can always match deeper.
                viable: true,
            };
            for (k, s) in path.iter().enumerate() {
                let hit = match step {
                    Step::Descendant(name) => seg_is_key(s, name),
                    _ => true,
                };
                if hit {
                    let r = relate(rest, path.get(k + 1..).unwrap_or_default());
                    out.selects |= r.selects;
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(segs: &[&str]) -> Vec<Seg<'static>> {
        segs.iter()
            .map(|s| match s.parse::<usize>() {
                Ok(n) => Seg::Index(n),
                Err(_) => Seg::Key(Cow::Owned((*s).to_owned())),
            })
            .collect()
    }

    #[test]
    fn child_paths_select_their_node_and_are_viable_above_it() {
        let jp = JsonPath::parse("$.params.arguments").unwrap();
        assert!(jp.relate(&p(&["params", "arguments"])).selects);
        assert!(!jp.relate(&p(&["params"])).selects);
        assert!(jp.relate(&p(&["params"])).viable);
        assert!(!jp.relate(&p(&["result"])).viable);
        assert!(!jp.relate(&p(&["params", "arguments", "x"])).selects);
    }

    #[test]
    fn bracket_wildcard_and_index_forms_are_equivalent_to_dot_forms() {
        let a = JsonPath::parse("$['result'].content[*].text").unwrap();
        let b = JsonPath::parse("$.result.content.*.text").unwrap();
        let path = p(&["result", "content", "3", "text"]);
        assert!(a.relate(&path).selects && b.relate(&path).selects);
        let c = JsonPath::parse("$.result.content[0].text").unwrap();
        assert!(c.relate(&p(&["result", "content", "0", "text"])).selects);
        assert!(!c.relate(&p(&["result", "content", "1", "text"])).selects);
        let q = JsonPath::parse(r#"$["params"]['we.ird key']"#).unwrap();
        assert!(q.relate(&p(&["params", "we.ird key"])).selects);
    }

    #[test]
    fn descendant_paths_match_at_any_depth() {
        let jp = JsonPath::parse("$..email").unwrap();
        assert!(
            jp.relate(&p(&["params", "arguments", "user", "email"]))
                .selects
        );
        assert!(jp.relate(&p(&["email"])).selects);
        assert!(!jp.relate(&p(&["params", "emails"])).selects);
        assert!(jp.relate(&p(&["params"])).viable);
        let any = JsonPath::parse("$.result..*").unwrap();
        assert!(any.relate(&p(&["result", "a", "b"])).selects);
        assert!(!any.relate(&p(&["result"])).selects);
    }

    #[test]
    fn unsupported_syntax_is_refused_with_a_reason() {
        for bad in [
            "params.arguments",
            "$.a[?(@.x)]",
            "$.a[0:2]",
            "$.a[-1]",
            "$.a['x','y']",
            "$.",
            "$.a b",
            "$[",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
