//! Glob patterns over exact names (tool, prompt and method names).
//!
//! The grammar is deliberately tiny: `*` matches any run of characters (including none), `?`
//! matches exactly one character, everything else matches itself, case-sensitively. There is no
//! escape: MCP tool names are limited to `A-Z a-z 0-9 _ - .` (SEP-986), so a literal `*` or `?`
//! never needs matching. Names are compared after JSON unescaping by the caller, so `"na\u006de"`
//! and `"name"` are the same name here.
//!
//! Matching is iterative with single-star backtracking: linear in practice, quadratic at worst,
//! never recursive (a hostile pattern cannot blow the stack).

use std::fmt;

/// Longest pattern accepted, in bytes. Tool names are at most 128 characters (SEP-986).
pub const MAX_PATTERN_LEN: usize = 256;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is the empty string, which could only ever match an empty name.
    #[error("empty pattern")]
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("pattern longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
    /// Contains a control character or white space, which no tool name can contain.
    #[error("pattern contains a control or white-space character")]
    BadCharacter,
}

#[derive(Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    Star,
}

/// A compiled glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
    /// Fast paths: most real patterns are `*`, an exact name, or `prefix*`.
    shape: Shape,
}

#[derive(Clone, PartialEq, Eq)]
enum Shape {
    MatchAll,
    Exact,
    Prefix(String),
    Suffix(String),
    General,
}

impl Pattern {
    /// Compiles `source`, refusing patterns that cannot match any MCP name.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        if source.is_empty() {
            return Err(PatternError::Empty);
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if source.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(PatternError::BadCharacter);
        }
        let mut tokens: Vec<Token> = Vec::with_capacity(source.len());
        for c in source.chars() {
            let t = match c {
                '*' => Token::Star,
                '?' => Token::Any,
                c => Token::Literal(c),
            };
            // `**` is the same as `*`; collapsing keeps matching linear.
            if t == Token::Star && tokens.last() == Some(&Token::Star) {
                continue;
            }
            tokens.push(t);
        }
        let stars = tokens.iter().filter(|t| **t == Token::Star).count();
        let anys = tokens.contains(&Token::Any);
        let shape = if tokens == [Token::Star] {
            Shape::MatchAll
        } else if stars == 0 && !anys {
            Shape::Exact
        } else if stars == 1 && !anys && tokens.last() == Some(&Token::Star) {
            Shape::Prefix(source.trim_end_matches('*').to_owned())
        } else if stars == 1 && !anys && tokens.first() == Some(&Token::Star) {
            Shape::Suffix(source.trim_start_matches('*').to_owned())
        } else {
            Shape::General
        };
        Ok(Pattern {
            source: source.to_owned(),
            tokens,
            shape,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        match &self.shape {
            Shape::MatchAll => true,
            Shape::Exact => self.source == name,
            Shape::Prefix(p) => name.starts_with(p.as_str()),
            Shape::Suffix(s) => name.ends_with(s.as_str()),
            Shape::General => self.matches_general(name),
        }
    }

    fn matches_general(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let (mut p, mut n) = (0usize, 0usize);
        // Position of the last star seen and the name position it was tried at.
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            match (self.tokens.get(p), name.get(n)) {
                (Some(Token::Star), _) => {
                    backtrack = Some((p, n));
                    p += 1;
                }
                (Some(Token::Any), Some(_)) => {
                    p += 1;
                    n += 1;
                }
                (Some(Token::Literal(c)), Some(x)) if c == x => {
                    p += 1;
                    n += 1;
                }
                (None, None) => return true,
                _ => match backtrack {
                    // Let the last star swallow one more character and retry.
                    Some((sp, sn)) if sn < name.len() => {
                        backtrack = Some((sp, sn + 1));
                        p = sp + 1;
                        n = sn + 1;
                    }
                    _ => return false,
                },
            }
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

/// A list of patterns; matches when any member does. An empty set matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    /// Compiles every pattern; the error names the index of the first bad one.
    pub fn new<S: AsRef<str>>(sources: &[S]) -> Result<Self, (usize, PatternError)> {
        let mut patterns = Vec::with_capacity(sources.len());
        for (i, s) in sources.iter().enumerate() {
            patterns.push(Pattern::new(s.as_ref()).map_err(|e| (i, e))?);
        }
        Ok(PatternSet { patterns })
    }

    /// Whether any pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    /// Whether the set has no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The compiled patterns, in configuration order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).unwrap().matches(n)
    }

    #[test]
    fn star_matches_everything_including_empty() {
        assert!(m("*", ""));
        assert!(m("*", "delete_repo"));
        assert!(m("**", "x"));
    }

    #[test]
    fn exact_patterns_are_case_sensitive() {
        assert!(m("echo", "echo"));
        assert!(!m("echo", "Echo"));
        assert!(!m("echo", "echo2"));
        assert!(!m("echo", "ech"));
    }

    #[test]
    fn prefix_suffix_and_infix_stars() {
        assert!(m("delete_*", "delete_repo"));
        assert!(m("delete_*", "delete_"));
        assert!(!m("delete_*", "undelete_repo"));
        assert!(m("*_admin", "repo_admin"));
        assert!(!m("*_admin", "repo_admin2"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*a*", "banana"));
        assert!(!m("*z*", "banana"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(m("tool_?", "tool_1"));
        assert!(!m("tool_?", "tool_"));
        assert!(!m("tool_?", "tool_12"));
        assert!(m("t??l", "tool"));
        assert!(m("?*", "x"));
        assert!(!m("?*", ""));
        // One character, not one byte.
        assert!(m("caf?", "café"));
    }

    #[test]
    fn backtracking_handles_repeated_prefixes() {
        assert!(m("*ab", "aaab"));
        assert!(m("a*aab", "aaaab"));
        assert!(!m("a*aab", "aab"));
        assert!(m("*?*?", "xy"));
        assert!(!m("*?*?", "x"));
    }

    #[test]
    fn pathological_pattern_finishes_quickly() {
        let name = "a".repeat(200);
        let pat = format!("{}b", "a*".repeat(60));
        assert!(!m(&pat, &name));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        assert_eq!(Pattern::new(""), Err(PatternError::Empty));
        assert_eq!(Pattern::new("a b"), Err(PatternError::BadCharacter));
        assert_eq!(Pattern::new("a\u{0}"), Err(PatternError::BadCharacter));
        assert_eq!(Pattern::new(&"x".repeat(257)), Err(PatternError::TooLong));
    }

    #[test]
    fn pattern_set_reports_index_of_bad_pattern() {
        assert_eq!(PatternSet::new(&["ok", "", "x"]).unwrap_err().0, 1);
        let set = PatternSet::new(&["echo", "delete_*"]).unwrap();
        assert!(set.matches("delete_x"));
        assert!(!set.matches("deploy"));
        assert!(!PatternSet::default().matches("anything"));
    }
}
