//! The reference JSON reader: serde_json, into a tree that keeps what `serde_json::Value` throws
//! away: member order and **duplicate keys** (a `Value` keeps the last duplicate). Every
//! differential check compares mcp-core against this tree.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value as serde_json reads it, members in order, duplicates kept.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// serde_json's verdict on `bytes` (RFC 8259 plus its own limits: recursion depth 128, numbers
/// that overflow f64 are errors).
pub fn parse(bytes: &[u8]) -> Result<J, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// serde_json refused `bytes` only because a number overflows f64 (`1e999`): mcp-core keeps
/// numbers as text and accepts them (documented in crates/mcp-core/tests/json_conformance.rs).
pub fn is_number_out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

impl J {
    /// Nesting depth counted in containers, as `json::Limits::max_depth` counts it.
    pub fn depth(&self) -> usize {
        match self {
            J::Arr(items) => 1 + items.iter().map(J::depth).max().unwrap_or(0),
            J::Obj(members) => 1 + members.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether some object repeats a key (compared after unescaping).
    pub fn has_duplicate_key(&self) -> bool {
        match self {
            J::Arr(items) => items.iter().any(J::has_duplicate_key),
            J::Obj(members) => {
                let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                keys.windows(2).any(|w| w[0] == w[1])
                    || members.iter().any(|(_, v)| v.has_duplicate_key())
            }
            _ => false,
        }
    }

    /// The members named `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a J> + 'a {
        let members: &[(String, J)] = match self {
            J::Obj(m) => m,
            _ => &[],
        };
        members
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Visits every string value (not keys) with the path of keys above it.
    pub fn strings<'a>(&'a self, path: &mut Vec<&'a str>, f: &mut dyn FnMut(&[&'a str], &'a str)) {
        match self {
            J::Str(s) => f(path, s),
            J::Arr(items) => items.iter().for_each(|v| v.strings(path, f)),
            J::Obj(members) => {
                for (k, v) in members {
                    path.push(k);
                    v.strings(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<J, E> {
        Ok(J::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<J, E> {
        Ok(J::Num(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<J, E> {
        Ok(J::Num(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<J, E> {
        serde_json::Number::from_f64(n)
            .map(J::Num)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, s: &str) -> Result<J, E> {
        Ok(J::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<J, E> {
        Ok(J::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<J>()? {
            items.push(v);
        }
        Ok(J::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, J>()? {
            members.push((k, v));
        }
        Ok(J::Obj(members))
    }
}
