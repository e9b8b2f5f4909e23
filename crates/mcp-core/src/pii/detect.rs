//! Hand-written detectors over decoded text.
//!
//! One pass over the bytes, 64 at a time: a 256-entry table gives each byte's flags, bit masks
//! give the positions where a finding could start, and only those run a detector (see
//! [`scan`]). A trigger (`@`, a digit or `+`/`(` at a token start, `:`,
//! `-----BEGIN`, the first letter of a secret prefix at a token start) runs the one detector that
//! can start there, and every candidate is validated (Luhn, mod-97, SSN area/group/serial rules,
//! octet ranges, JWT header JSON, entropy) before it counts. Offsets are byte offsets into the
//! text and always fall on char boundaries: every delimiter the detectors look at is ASCII.

use std::ops::Range;

/// The built-in detectors, in configuration order (their index is their bit in a
/// [`DetectorSet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `local@domain.tld`.
    Email,
    /// E.164 `+` numbers and separated NANP numbers.
    Phone,
    /// 13–19 digit card numbers with a known issuer prefix that pass Luhn.
    CreditCard,
    /// `AAA-GG-SSSS` / `AAA GG SSSS` US social security numbers.
    UsSsn,
    /// IBANs with a known country length that pass ISO 7064 mod 97-10.
    Iban,
    /// Dotted-quad IPv4 addresses (octets ≤ 255, no leading zeros).
    Ipv4,
    /// IPv6 addresses (std parser), with shape checks against code and clock times.
    Ipv6,
    /// AWS access key ids (`AKIA`, `ASIA`, `ABIA`, `ACCA`, `A3T…`), `…EXAMPLE` allowed.
    AwsAccessKey,
    /// GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// Slack tokens (`xoxb-`, `xoxp-`, `xoxe-`, `xoxa-`, `xoxr-`, `xoxo-`, `xoxs-`, `xapp-`).
    SlackToken,
    /// JSON Web Tokens whose header decodes to a JSON object with `alg`.
    Jwt,
    /// PEM private key blocks (`-----BEGIN … PRIVATE KEY-----`).
    PrivateKey,
}

impl Builtin {
    /// Every built-in detector, in bit order.
    pub const ALL: [Builtin; 12] = [
        Builtin::Email,
        Builtin::Phone,
        Builtin::CreditCard,
        Builtin::UsSsn,
        Builtin::Iban,
        Builtin::Ipv4,
        Builtin::Ipv6,
        Builtin::AwsAccessKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::Jwt,
        Builtin::PrivateKey,
    ];

    /// The configuration name (`credit_card`), also used in replacements and stats.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::Phone => "phone",
            Builtin::CreditCard => "credit_card",
            Builtin::UsSsn => "us_ssn",
            Builtin::Iban => "iban",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::AwsAccessKey => "aws_access_key",
            Builtin::GithubToken => "github_token",
            Builtin::SlackToken => "slack_token",
            Builtin::Jwt => "jwt",
            Builtin::PrivateKey => "private_key",
        }
    }

    /// The detector called `name`, if any.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of enabled built-in detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DetectorSet(u16);

impl DetectorSet {
    /// Every built-in detector.
    pub fn all() -> Self {
        DetectorSet(Builtin::ALL.iter().fold(0, |acc, b| acc | b.bit()))
    }

    /// No detector.
    pub fn none() -> Self {
        DetectorSet(0)
    }

    /// Adds `b`.
    pub fn insert(&mut self, b: Builtin) {
        self.0 |= b.bit();
    }

    /// Whether `b` is enabled.
    pub fn contains(self, b: Builtin) -> bool {
        self.0 & b.bit() != 0
    }

    /// Whether no detector is enabled.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One detected value: which detector, and where in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The detector.
    pub kind: Builtin,
    /// Byte range of the value in the scanned text.
    pub range: Range<usize>,
}

// Trigger classes.
const T_AT: u8 = 1; // '@'
const T_DIGIT: u8 = 2; // 0-9
const T_PLUS: u8 = 3; // '+'
const T_PAREN: u8 = 4; // '('
const T_COLON: u8 = 5; // ':'
const T_DASH: u8 = 6; // '-'
const T_UPPER: u8 = 7; // A-Z (IBAN country code, AWS prefix)
const T_G: u8 = 8; // 'g'
const T_X: u8 = 9; // 'x' / 'X'
const T_E: u8 = 10; // 'e'

/// The trigger class of a byte (the compiler turns this match into a lookup table).
#[inline(always)]
const fn class_of(c: u8) -> u8 {
    match c {
        b'@' => T_AT,
        b'0'..=b'9' => T_DIGIT,
        b'+' => T_PLUS,
        b'(' => T_PAREN,
        b':' => T_COLON,
        b'-' => T_DASH,
        b'A'..=b'Z' => T_UPPER,
        b'g' => T_G,
        b'x' => T_X,
        b'e' => T_E,
        _ => 0,
    }
}

#[inline]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

#[inline]
fn before(b: &[u8], i: usize) -> u8 {
    i.checked_sub(1).map_or(0, |j| at(b, j))
}

#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[inline]
fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn starts_with_at(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b.get(i..i + lit.len()) == Some(lit)
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = b.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A number starts here: no word character before it, and not the continuation of a longer
/// numeric structure (`2024-4111…`, `1.4111…`, `10:4111…`).
fn numeric_left_ok(b: &[u8], i: usize) -> bool {
    let p = before(b, i);
    if is_word(p) {
        return false;
    }
    if matches!(p, b'.' | b'-' | b'/' | b':' | b',') && i >= 2 && is_digit(before(b, i - 1)) {
        return false;
    }
    true
}

/// A number ends here: no word character after it, and no `.5`, `-12`, `/3`, `:30` that would
/// make it part of a longer numeric structure (a decimal, a date, a time, a version).
fn numeric_right_ok(b: &[u8], e: usize) -> bool {
    let n = at(b, e);
    if is_word(n) {
        return false;
    }
    if matches!(n, b'.' | b'-' | b'/' | b':') && is_digit(at(b, e + 1)) {
        return false;
    }
    true
}

/// Shannon entropy in bits per symbol (gitleaks uses it to drop low-randomness look-alikes).
fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &c in s {
        if let Some(n) = counts.get_mut(usize::from(c)) {
            *n += 1;
        }
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / len;
            -p * p.log2()
        })
        .sum()
}

/// Per-byte flags for [`scan`]: [`F_WORD`], [`F_TRIGGER`], [`F_DASH`].
// Built at compile time: an out-of-bounds index would fail the build, not a request.
#[allow(clippy::indexing_slicing)]
static FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let word = b.is_ascii_alphanumeric() || b == b'_';
        let trigger = class_of(b) != 0;
        t[c] = (word as u8) * F_WORD + (trigger as u8) * F_TRIGGER + (b == b'-') as u8 * F_DASH;
        c += 1;
    }
    t
};
/// A word character (`[A-Za-z0-9_]`).
const F_WORD: u8 = 1;
/// A byte that can start a finding: anywhere if not a word character, only at the start of a
/// word if it is one (every word-character trigger needs a token start).
const F_TRIGGER: u8 = 2;
/// `-`.
const F_DASH: u8 = 4;

/// The word, trigger and dash bit masks of a 64-byte block (bit k = byte k).
#[inline(always)]
fn masks(block: &[u8; 64]) -> (u64, u64, u64) {
    let (mut word, mut trigger, mut dash) = (0u64, 0u64, 0u64);
    for (g, eight) in block.chunks_exact(8).enumerate() {
        // The flags of eight bytes in one word, then one bit per byte for each flag.
        let mut x = 0u64;
        for (k, &c) in eight.iter().enumerate() {
            x |= u64::from(FLAGS.get(usize::from(c)).copied().unwrap_or(0)) << (8 * k);
        }
        word |= gather(x) << (8 * g);
        trigger |= gather(x >> 1) << (8 * g);
        dash |= gather(x >> 2) << (8 * g);
    }
    (word, trigger, dash)
}

/// Bit 0 of each of the eight bytes of `x`, packed into the low byte (byte k -> bit k): the
/// partial products of the multiplication land on distinct bits, so nothing carries.
#[inline(always)]
fn gather(x: u64) -> u64 {
    ((x & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Runs the enabled detectors over `text`, appending what they find to `out` (in text order,
/// possibly overlapping; see [`resolve_overlaps`]).
///
/// Candidates are found without a branch per byte: for each 64-byte block, bit masks of word
/// characters, triggers and dashes come from a table, word starts from a shift, and only the
/// trigger positions that remain (non-word triggers, word triggers at a word start, a `-` only
/// where `--` starts) run a detector. Text costs a table load and a few bit operations per
/// byte; branches are taken per candidate. Every detector re-checks its own left boundary, so
/// the masks only decide what is worth asking (`scan_bytewise` in the tests is the
/// definition this must match).
pub fn scan(text: &str, set: DetectorSet, out: &mut Vec<Found>) {
    if set.is_empty() {
        return;
    }
    let b = text.as_bytes();
    // The first position not yet consumed: the end of the last finding.
    let mut next = 0usize;
    // Tokens already examined by the IPv6 detector (one attempt per colon-separated token).
    let mut ipv6_done = 0usize;
    let mut prev_word = 0u64;
    let mut base = 0usize;
    // Whole 64-byte blocks, then the rest zero-padded (a zero byte has no flag).
    let (full, rest) = b.as_chunks::<64>();
    let mut tail = [0u8; 64];
    if let Some(t) = tail.get_mut(..rest.len()) {
        t.copy_from_slice(rest);
    }
    let padded = (!rest.is_empty()).then_some((&tail, rest.len()));
    for (block, len) in full.iter().map(|block| (block, 64)).chain(padded) {
        let (word, trigger, dash) = masks(block);
        // A `-` matters only as the start of `-----BEGIN`: keep the ones followed by a `-`.
        let next_dash = u64::from(at(b, base + len) == b'-') << (len - 1);
        let lone_dash = dash & !((dash >> 1) | next_dash);
        let starts = word & !((word << 1) | prev_word);
        let mut cand = trigger & (!word | starts) & !lone_dash;
        prev_word = (word >> (len - 1)) & 1;
        while cand != 0 {
            let i = base + cand.trailing_zeros() as usize;
            cand &= cand - 1;
            if i < next {
                continue;
            }
            let found = detect_at(b, i, next, set, &mut ipv6_done);
            if let Some(f) = found {
                // An email's local part starts before its '@': never jump backwards.
                next = f.range.end.max(i + 1);
                out.push(f);
            }
        }
        base += len;
    }
}

/// Runs the one detector a trigger at `i` can start. `floor`: the end of the last finding, where
/// a finding may start at the earliest (an email's local part is read backwards from its `@`).
/// `ipv6_done`: the end of the last token the IPv6 detector examined (one attempt per
/// colon-separated token).
#[inline]
fn detect_at(
    b: &[u8],
    i: usize,
    floor: usize,
    set: DetectorSet,
    ipv6_done: &mut usize,
) -> Option<Found> {
    match class_of(at(b, i)) {
        T_DIGIT => numeric(b, i, set),
        T_UPPER => upper(b, i, set),
        T_G => github(b, i, set),
        T_X => slack(b, i, set),
        T_E => jwt(b, i, set),
        T_AT => email(b, i, floor, set),
        T_PLUS => e164(b, i, set),
        T_PAREN => nanp(b, i, set),
        T_COLON if i >= *ipv6_done => {
            let r = ipv6(b, i, set);
            *ipv6_done = r.1;
            r.0
        }
        T_DASH => private_key(b, i, set),
        _ => None,
    }
}

/// Keeps the earliest (then longest) of overlapping findings, in text order.
pub fn resolve_overlaps(found: &mut Vec<Found>) {
    if found.len() < 2 {
        return;
    }
    found.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    let mut end = 0usize;
    found.retain(|f| {
        if f.range.start < end {
            return false;
        }
        end = f.range.end;
        true
    });
}

fn hit(kind: Builtin, range: Range<usize>) -> Option<Found> {
    Some(Found { kind, range })
}

// ---------------------------------------------------------------------------------------------
// email

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

/// Top-level "domains" that are really file names (`icon@2x.png`, `logo@3x.webp`).
const FILE_TLDS: [&str; 14] = [
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "pdf", "js", "css", "ts", "map",
    "json",
];

fn email(b: &[u8], at_pos: usize, floor: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::Email) {
        return None;
    }
    // The local part never reaches into the previous finding: in
    // `mailto:alice@example.com?cc=bob@example.com` the second address starts after the first
    // (`?cc=bob` is legal atext), instead of overlapping it and being dropped.
    let mut s = at_pos;
    while s > floor && is_local_char(before(b, s)) && at_pos - s < 64 {
        s -= 1;
    }
    while at(b, s) == b'.' && s < at_pos {
        s += 1;
    }
    let glued = s > floor && is_local_char(before(b, s));
    if s == at_pos || before(b, at_pos) == b'.' || glued {
        return None;
    }
    let mut j = at_pos + 1;
    let mut labels = 0;
    let mut last = at_pos + 1..at_pos + 1;
    loop {
        let k = j;
        while at(b, j).is_ascii_alphanumeric() || at(b, j) == b'-' {
            j += 1;
        }
        if j == k || at(b, k) == b'-' || before(b, j) == b'-' || j - k > 63 {
            return None;
        }
        labels += 1;
        last = k..j;
        if at(b, j) == b'.' && at(b, j + 1).is_ascii_alphanumeric() {
            j += 1;
        } else {
            break;
        }
    }
    let tld = b.get(last)?;
    if labels < 2 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    if FILE_TLDS
        .iter()
        .any(|t| t.as_bytes().eq_ignore_ascii_case(tld))
    {
        return None;
    }
    if is_word(at(b, j)) || at(b, j) == b'@' {
        return None;
    }
    hit(Builtin::Email, s..j)
}

// ---------------------------------------------------------------------------------------------
// numbers: cards, SSNs, NANP phones, IPv4

fn numeric(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !numeric_left_ok(b, i) {
        return None;
    }
    // Most numbers in text are none of these (quantities, years, ids, hex, times), and the
    // first run of digits and what follows it say so without running any detector: an IPv4
    // address starts `d{1,3}.`, an SSN `ddd-`/`ddd `, a phone `ddd` or `1` then `-`, `.` or a
    // space, a grouped card `dddd ` / `dddd-` / `dddd.`, an ungrouped card is 13-19 digits.
    let (_, n) = digits(b, i);
    let plausible = match at(b, i + n) {
        b'.' => n <= 4,
        b'-' | b' ' => n <= 4,
        _ => false,
    } || (13..=19).contains(&n);
    if !plausible {
        return None;
    }
    if set.contains(Builtin::Ipv4) {
        if let Some(f) = ipv4(b, i) {
            return Some(f);
        }
    }
    if set.contains(Builtin::UsSsn) {
        if let Some(f) = ssn(b, i) {
            return Some(f);
        }
    }
    if set.contains(Builtin::Phone) {
        if let Some(f) = nanp_plain(b, i) {
            return Some(f);
        }
    }
    if set.contains(Builtin::CreditCard) {
        if let Some(f) = card(b, i) {
            return Some(f);
        }
    }
    None
}

/// Reads a run of ASCII digits starting at `i`: (value of at most 9 digits, length).
fn digits(b: &[u8], i: usize) -> (u64, usize) {
    let mut n = 0usize;
    let mut v = 0u64;
    while is_digit(at(b, i + n)) {
        if n < 9 {
            v = v * 10 + u64::from(at(b, i + n) - b'0');
        }
        n += 1;
    }
    (v, n)
}

fn card_prefix_ok(d: &[u8]) -> bool {
    let p = |n: usize| -> u32 {
        d.iter()
            .take(n)
            .fold(0u32, |acc, &x| acc * 10 + u32::from(x))
    };
    let (p1, p2, p3, p4) = (p(1), p(2), p(3), p(4));
    p1 == 4
        || (50..=58).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || (300..=305).contains(&p3)
        || p2 == 36
        || p2 == 38
        || p2 == 39
        || (3528..=3589).contains(&p4)
        || p1 == 6
}

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &x) in d.iter().rev().enumerate() {
        let x = u32::from(x);
        sum += if k % 2 == 1 {
            let y = x * 2;
            if y > 9 {
                y - 9
            } else {
                y
            }
        } else {
            x
        };
    }
    sum.is_multiple_of(10)
}

fn card(b: &[u8], i: usize) -> Option<Found> {
    // Groups of digits, each separated from the next by one space, dash or dot (in any mix:
    // `4111 1111-1111 1111` is still a card to whoever reads it), or one run: at most five
    // groups (start, end), on the stack.
    let mut groups = [(0usize, 0usize); 5];
    let mut count = 0usize;
    let mut j = i;
    loop {
        let (_, n) = digits(b, j);
        if n == 0 {
            break;
        }
        if let Some(g) = groups.get_mut(count) {
            *g = (j, j + n);
        }
        count += 1;
        j += n;
        let c = at(b, j);
        if matches!(c, b' ' | b'-' | b'.') && is_digit(at(b, j + 1)) && count < 5 {
            j += 1;
        } else {
            break;
        }
    }
    if count > 1 && groups.first().is_none_or(|g| g.1 - g.0 != 4) {
        // Grouped cards are 4 first, then groups of 3–6 (4-4-4-4, 4-6-5, 4-4-4-4-3). Anything
        // else after the first run is not part of it (`4111111111111111 123`: a card, then a
        // CVV): only the run itself is a candidate.
        count = 1;
    }
    // The digits of all groups (the first 19): every candidate's digits are a prefix of them.
    let mut all = [0u8; 19];
    let digit_bytes = groups
        .get(..count)
        .unwrap_or_default()
        .iter()
        .flat_map(|g| b.get(g.0..g.1).unwrap_or_default());
    for (slot, &c) in all.iter_mut().zip(digit_bytes) {
        *slot = c - b'0';
    }
    // Try the longest candidate first, dropping trailing groups (a card followed by a year).
    while count > 0 {
        let cand = groups.get(..count)?;
        let ok_groups = count == 1 || cand.iter().skip(1).all(|g| (3..=6).contains(&(g.1 - g.0)));
        let len: usize = cand.iter().map(|g| g.1 - g.0).sum();
        let end = cand.last().map_or(i, |g| g.1);
        if ok_groups && (13..=19).contains(&len) && numeric_right_ok(b, end) {
            let d = all.get(..len).unwrap_or_default();
            if card_prefix_ok(d) && d.iter().any(|&x| Some(&x) != d.first()) && luhn(d) {
                return hit(Builtin::CreditCard, i..end);
            }
        }
        count -= 1;
    }
    None
}

fn ssn(b: &[u8], i: usize) -> Option<Found> {
    let (area, n1) = digits(b, i);
    if n1 != 3 {
        return None;
    }
    let sep = at(b, i + 3);
    if sep != b'-' && sep != b' ' {
        return None;
    }
    let (group, n2) = digits(b, i + 4);
    if n2 != 2 || at(b, i + 6) != sep {
        return None;
    }
    let (serial, n3) = digits(b, i + 7);
    if n3 != 4 || !numeric_right_ok(b, i + 11) {
        return None;
    }
    // SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000; plus the numbers
    // that are invalid because they were published (Woolworth's 078-05-1120, 123-45-6789).
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return None;
    }
    let all = area * 1_000_000 + group * 10_000 + serial;
    if all == 78_051_120 || all == 123_456_789 || all == 111_111_111 * (area / 111) {
        return None;
    }
    hit(Builtin::UsSsn, i..i + 11)
}

/// `NXX-NXX-XXXX`, `NXX.NXX.XXXX`, `NXX NXX XXXX` (one separator throughout), optionally
/// preceded by `1-`/`1.`/`1 `. Bare 10-digit runs are not phones here (order numbers, ids).
fn nanp_plain(b: &[u8], i: usize) -> Option<Found> {
    let mut s = i;
    if at(b, i) == b'1' && matches!(at(b, i + 1), b'-' | b'.' | b' ') && is_digit(at(b, i + 2)) {
        s = i + 2;
    }
    let (_, n1) = digits(b, s);
    if n1 != 3 || !(b'2'..=b'9').contains(&at(b, s)) {
        return None;
    }
    let sep = at(b, s + 3);
    if !matches!(sep, b'-' | b'.' | b' ') {
        return None;
    }
    if s != i && at(b, i + 1) != sep {
        return None;
    }
    nanp_tail(b, i, s + 4, Some(sep))
}

/// The `NXX-XXXX` after the area code; `sep` is the separator it must use (`None`: `-`, `.`,
/// space or nothing, after a parenthesised area code).
fn nanp_tail(b: &[u8], start: usize, j: usize, sep: Option<u8>) -> Option<Found> {
    let (_, n2) = digits(b, j);
    if n2 != 3 || !(b'2'..=b'9').contains(&at(b, j)) {
        return None;
    }
    let c = at(b, j + 3);
    let k = match sep {
        Some(s) if c == s => j + 4,
        None if matches!(c, b'-' | b'.' | b' ') => j + 4,
        _ => return None,
    };
    let (_, n3) = digits(b, k);
    if n3 != 4 || !numeric_right_ok(b, k + 4) {
        return None;
    }
    hit(Builtin::Phone, start..k + 4)
}

/// `(NXX) NXX-XXXX`.
fn nanp(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::Phone) || is_word(before(b, i)) {
        return None;
    }
    let (_, n) = digits(b, i + 1);
    if n != 3 || at(b, i + 4) != b')' || !(b'2'..=b'9').contains(&at(b, i + 1)) {
        return None;
    }
    let j = if at(b, i + 5) == b' ' { i + 6 } else { i + 5 };
    nanp_tail(b, i, j, None)
}

/// `+` and 8–15 digits (E.164), digits grouped by single spaces, dashes, dots or a
/// parenthesised group: `+44 20 7946 0958`, `+1 (415) 555-0100`, `+4915112345678`.
fn e164(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::Phone) || is_word(before(b, i)) || before(b, i) == b'+' {
        return None;
    }
    if !(b'1'..=b'9').contains(&at(b, i + 1)) {
        return None;
    }
    let mut j = i + 1;
    let mut count = 0usize;
    let mut end = j;
    loop {
        let c = at(b, j);
        if is_digit(c) {
            count += 1;
            j += 1;
            end = j;
        } else if matches!(c, b' ' | b'-' | b'.')
            && (is_digit(at(b, j + 1)) || at(b, j + 1) == b'(')
        {
            j += 1;
        } else if c == b'(' {
            let (_, n) = digits(b, j + 1);
            if n == 0 || n > 4 || at(b, j + 1 + n) != b')' {
                break;
            }
            count += n;
            j += n + 2;
            end = j;
            if at(b, j) == b' ' && is_digit(at(b, j + 1)) {
                j += 1;
            }
        } else {
            break;
        }
        if count > 15 {
            return None;
        }
    }
    if !(8..=15).contains(&count) || !numeric_right_ok(b, end) {
        return None;
    }
    hit(Builtin::Phone, i..end)
}

/// Words that make a dotted quad a version number rather than an address.
const VERSION_WORDS: [&[u8]; 4] = [b"version", b"ver", b"release", b"build"];

fn preceded_by_version_word(b: &[u8], i: usize) -> bool {
    let mut k = i;
    while k > 0 && matches!(before(b, k), b' ' | b':' | b'=' | b'\t') {
        k -= 1;
    }
    let mut s = k;
    while s > 0 && before(b, s).is_ascii_alphabetic() {
        s -= 1;
    }
    let word = b.get(s..k).unwrap_or_default();
    VERSION_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

fn ipv4(b: &[u8], i: usize) -> Option<Found> {
    if before(b, i) == b'.' {
        return None;
    }
    let mut j = i;
    for k in 0..4 {
        let (v, n) = digits(b, j);
        if n == 0 || n > 3 || v > 255 || (n > 1 && at(b, j) == b'0') {
            return None;
        }
        j += n;
        if k < 3 {
            if at(b, j) != b'.' {
                return None;
            }
            j += 1;
        }
    }
    if is_word(at(b, j)) || (at(b, j) == b'.' && is_digit(at(b, j + 1))) {
        return None;
    }
    if preceded_by_version_word(b, i) {
        return None;
    }
    // A CIDR suffix belongs to the address.
    if at(b, j) == b'/' {
        let (v, n) = digits(b, j + 1);
        if (1..=2).contains(&n) && v <= 32 && !is_word(at(b, j + 1 + n)) {
            j += 1 + n;
        }
    }
    hit(Builtin::Ipv4, i..j)
}

// ---------------------------------------------------------------------------------------------
// IPv6

/// Returns the finding (if any) and the end of the token examined.
fn ipv6(b: &[u8], colon: usize, set: DetectorSet) -> (Option<Found>, usize) {
    if !set.contains(Builtin::Ipv6) {
        return (None, colon + 1);
    }
    let mut s = colon;
    while s > 0 && (before(b, s).is_ascii_hexdigit() || before(b, s) == b':') {
        s -= 1;
    }
    let mut e = colon;
    while at(b, e).is_ascii_hexdigit() || matches!(at(b, e), b':' | b'.') {
        e += 1;
    }
    while e > colon && before(b, e) == b'.' {
        e -= 1;
    }
    let token_end = e.max(colon + 1);
    if is_word(before(b, s)) || is_word(at(b, e)) || at(b, e) == b':' {
        return (None, token_end);
    }
    let Some(tok) = b.get(s..e) else {
        return (None, token_end);
    };
    let Ok(text) = std::str::from_utf8(tok) else {
        return (None, token_end);
    };
    let colons = tok.iter().filter(|&&c| c == b':').count();
    let longest_group = text.split([':', '.']).map(str::len).max().unwrap_or(0);
    let compressed = text.contains("::");
    // `d::f`, `a::b`, `::1` are code or loopback, not someone's address.
    if colons < 2 || (compressed && colons < 3 && longest_group < 3) {
        return (None, token_end);
    }
    if text.parse::<std::net::Ipv6Addr>().is_err() {
        return (None, token_end);
    }
    let mut end = e;
    if at(b, e) == b'/' {
        let (v, n) = digits(b, e + 1);
        if (1..=3).contains(&n) && v <= 128 && !is_word(at(b, e + 1 + n)) {
            end = e + 1 + n;
        }
    }
    (hit(Builtin::Ipv6, s..end), end)
}

// ---------------------------------------------------------------------------------------------
// Upper-case starts: IBAN, AWS

fn upper(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if is_word(before(b, i)) {
        return None;
    }
    if at(b, i) == b'X' {
        return slack(b, i, set);
    }
    if set.contains(Builtin::AwsAccessKey) && at(b, i) == b'A' {
        if let Some(f) = aws(b, i) {
            return Some(f);
        }
    }
    if set.contains(Builtin::Iban) {
        return iban(b, i);
    }
    None
}

fn aws(b: &[u8], i: usize) -> Option<Found> {
    let prefixed = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"]
        .iter()
        .any(|p| starts_with_at(b, i, *p))
        || (starts_with_at(b, i, b"A3T")
            && (at(b, i + 3).is_ascii_uppercase() || is_digit(at(b, i + 3))));
    if !prefixed {
        return None;
    }
    let body_start = i + 4;
    let body = b.get(body_start..body_start + 16)?;
    if !body
        .iter()
        .all(|&c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
    {
        return None;
    }
    let end = body_start + 16;
    if is_word(at(b, end)) {
        return None;
    }
    let key = b.get(i..end)?;
    // AWS documentation keys end in EXAMPLE (AKIAIOSFODNN7EXAMPLE); gitleaks allow-lists them.
    if key.ends_with(b"EXAMPLE") || entropy(key) <= 3.0 {
        return None;
    }
    hit(Builtin::AwsAccessKey, i..end)
}

/// IBAN lengths by ISO 3166 country code (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

fn iban_length(cc: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|&(_, n)| n)
}

fn iban(b: &[u8], i: usize) -> Option<Found> {
    if !at(b, i + 1).is_ascii_uppercase() || !is_digit(at(b, i + 2)) || !is_digit(at(b, i + 3)) {
        return None;
    }
    let len = iban_length(b.get(i..i + 2)?)?;
    // Collect `len` alphanumerics, allowing single spaces or dashes between groups of four
    // (`DE89 3704 0044 0532 0130 00`).
    // The longest IBAN (RU) has 33 characters: kept on the stack.
    let mut buf = [0u8; 34];
    let mut got = 0usize;
    let mut j = i;
    let mut sep = 0u8;
    while got < len {
        let c = at(b, j);
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            if let Some(slot) = buf.get_mut(got) {
                *slot = c;
            }
            got += 1;
            j += 1;
        } else if (c == b' ' || c == b'-') && got.is_multiple_of(4) && got != 0 {
            if sep == 0 {
                sep = c;
            } else if sep != c {
                return None;
            }
            j += 1;
        } else {
            return None;
        }
    }
    if is_word(at(b, j)) {
        return None;
    }
    // ISO 7064 MOD 97-10: move the first four characters to the end, letters to 10..35.
    let (head, tail) = buf.get(..len)?.split_at_checked(4)?;
    let mut rem = 0u32;
    for &c in tail.iter().chain(head.iter()) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    (rem == 1).then_some(Found {
        kind: Builtin::Iban,
        range: i..j,
    })
}

// ---------------------------------------------------------------------------------------------
// Lower-case prefixed secrets

fn github(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::GithubToken) || is_word(before(b, i)) {
        return None;
    }
    if starts_with_at(b, i, b"github_pat_") {
        let s = i + 11;
        let body = b.get(s..s + 82)?;
        if !body.iter().all(|&c| is_word(c)) || is_word(at(b, s + 82)) || entropy(body) <= 3.0 {
            return None;
        }
        return hit(Builtin::GithubToken, i..s + 82);
    }
    if at(b, i + 1) != b'h'
        || !matches!(at(b, i + 2), b'p' | b'o' | b'u' | b's' | b'r')
        || at(b, i + 3) != b'_'
    {
        return None;
    }
    let s = i + 4;
    let body = b.get(s..s + 36)?;
    if !body.iter().all(u8::is_ascii_alphanumeric) || is_word(at(b, s + 36)) || entropy(body) <= 3.0
    {
        return None;
    }
    hit(Builtin::GithubToken, i..s + 36)
}

fn slack(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::SlackToken) || is_word(before(b, i)) {
        return None;
    }
    let is_app = b
        .get(i..i + 5)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"xapp-"));
    let kind = if is_app {
        b'a'
    } else if starts_with_at(b, i, b"xox") && at(b, i + 4) == b'-' {
        at(b, i + 3)
    } else {
        return None;
    };
    let s = i + 5;
    let mut e = s;
    while at(b, e).is_ascii_alphanumeric() || at(b, e) == b'-' {
        e += 1;
    }
    while e > s && before(b, e) == b'-' {
        e -= 1;
    }
    let run = b.get(s..e)?;
    let segs: Vec<&[u8]> = run.split(|&c| c == b'-').collect();
    let all_digits = |x: &[u8], lo: usize, hi: usize| {
        (lo..=hi).contains(&x.len()) && x.iter().all(u8::is_ascii_digit)
    };
    let seg = |k: usize| segs.get(k).copied().unwrap_or_default();
    let rest_len = |k: usize| {
        segs.iter()
            .skip(k)
            .map(|x| x.len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    let ok = if is_app {
        // xapp-1-A0123456789-1234567890123-abcdef0123…
        segs.len() >= 4
            && all_digits(seg(0), 1, 1)
            && seg(1).len() >= 2
            && all_digits(seg(2), 1, 20)
            && seg(3).len() >= 8
    } else {
        match kind {
            // xoxb-<8-14 digits>-<10+ digits or 18-26 alnum>…
            b'b' => all_digits(seg(0), 8, 14) && seg(1).len() >= 10,
            // xoxp-/xoxe-: three numeric ids then 28-34 characters.
            b'p' | b'e' => {
                all_digits(seg(0), 10, 13)
                    && all_digits(seg(1), 10, 13)
                    && all_digits(seg(2), 10, 13)
                    && (28..=34).contains(&rest_len(3))
            }
            // xoxo-/xoxs-: three numeric ids then hex.
            b'o' | b's' => {
                segs.len() >= 4
                    && all_digits(seg(0), 1, 20)
                    && all_digits(seg(1), 1, 20)
                    && all_digits(seg(2), 1, 20)
                    && seg(3).len() >= 8
                    && seg(3).iter().all(u8::is_ascii_hexdigit)
            }
            // xoxa-/xoxr-: optional single digit, then 8-48 alphanumerics.
            b'a' | b'r' => {
                let body = if all_digits(seg(0), 1, 1) && segs.len() > 1 {
                    seg(1)
                } else {
                    seg(0)
                };
                (8..=48).contains(&body.len())
            }
            _ => false,
        }
    };
    if !ok || entropy(run) <= 2.0 {
        return None;
    }
    hit(Builtin::SlackToken, i..e)
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Decodes unpadded base64url (standard `+`/`/` also accepted).
pub(crate) fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        }))
    };
    let s = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

fn decodes_to_object(seg: &[u8], require_alg: bool) -> bool {
    let Some(raw) = base64url_decode(seg) else {
        return false;
    };
    let Ok(v) = crate::json::skim(&raw, &crate::json::Limits { max_depth: 16 }) else {
        return false;
    };
    v.kind() == crate::json::Kind::Object && (!require_alg || v.get("alg").is_some())
}

fn jwt(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::Jwt) || is_word(before(b, i)) || !starts_with_at(b, i, b"eyJ") {
        return None;
    }
    let seg_end = |from: usize| {
        let mut e = from;
        while is_b64url(at(b, e)) {
            e += 1;
        }
        e
    };
    let h_end = seg_end(i);
    if h_end - i < 10 || at(b, h_end) != b'.' {
        return None;
    }
    let p_start = h_end + 1;
    let p_end = seg_end(p_start);
    if p_end - p_start < 10 || at(b, p_end) != b'.' {
        return None;
    }
    let s_start = p_end + 1;
    let mut s_end = seg_end(s_start);
    while at(b, s_end) == b'=' && s_end < s_start + 64 * 1024 {
        s_end += 1;
    }
    if at(b, s_end) == b'.' || is_word(at(b, s_end)) {
        return None;
    }
    if !decodes_to_object(b.get(i..h_end)?, true)
        || !decodes_to_object(b.get(p_start..p_end)?, false)
    {
        return None;
    }
    hit(Builtin::Jwt, i..s_end)
}

// ---------------------------------------------------------------------------------------------
// PEM private keys

fn private_key(b: &[u8], i: usize, set: DetectorSet) -> Option<Found> {
    if !set.contains(Builtin::PrivateKey) || !starts_with_at(b, i, b"-----BEGIN") {
        return None;
    }
    let label_start = i + 10;
    let label_end = find_from(b, label_start, b"-----")?;
    let label = b.get(label_start..label_end)?;
    let label_ok = label.len() <= 100
        && label.iter().all(|&c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, b' ' | b'_' | b'-')
        })
        && (label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK"));
    if !label_ok {
        return None;
    }
    let body_start = label_end + 5;
    let Some(end_marker) = find_from(b, body_start, b"-----END") else {
        // A truncated key is still a secret: everything from BEGIN to the end of the text.
        return (b.len() >= body_start + 64).then_some(Found {
            kind: Builtin::PrivateKey,
            range: i..b.len(),
        });
    };
    if end_marker < body_start + 64 {
        return None;
    }
    let close = find_from(b, end_marker + 8, b"-----")?;
    let end_label = b.get(end_marker + 8..close)?;
    if !(end_label.ends_with(b"KEY") || end_label.ends_with(b"KEY BLOCK")) || end_label.len() > 100
    {
        return None;
    }
    hit(Builtin::PrivateKey, i..close + 5)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The candidate rule of [`scan`] written the plain way, one byte at a time: a non-word
    /// trigger anywhere, a word trigger only where a word starts, skipping what a finding
    /// covers. [`scan`] must find exactly what this finds.
    fn scan_bytewise(text: &str, set: DetectorSet) -> Vec<Found> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let (mut next, mut ipv6_done) = (0usize, 0usize);
        for i in 0..b.len() {
            let c = b[i];
            let class = class_of(c);
            let word_start = !is_word(before(b, i));
            if i < next || class == 0 || (is_word(c) && !word_start) {
                continue;
            }
            let found = detect_at(b, i, next, set, &mut ipv6_done);
            if let Some(f) = found {
                next = f.range.end.max(i + 1);
                out.push(f);
            }
        }
        out
    }

    /// Values, fragments of values and look-alikes, glued by separators into texts that cross
    /// the 64-byte block boundaries of [`scan`] at every offset.
    const PIECES: &[&str] = &[
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "378282246310005",
        "3782 822463 10005", "4111 1111 1111 1111 2024", "536-22-8714", "536 22 8714",
        "000-12-3456", "+44 20 7946 0958", "+1 (415) 555-0100", "(415) 555-0132",
        "1-415-555-0132", "415.555.0132", "DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
        "203.0.113.42", "10.0.0.1/24", "1.2.3.4.5", "v1.2.3.4", "2001:db8::8a2e:370:7334", "::1",
        "10:30:00", "AKIAUVW75EFR6EDT4SYW", "AKIAIOSFODNN7EXAMPLE",
        "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d",
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF\n-----END RSA PRIVATE KEY-----",
        "jane.doe@acme-corp.com", "a@b.co", "icon@2x.png", "ORD-2025-100000", "2025-01-01T10:00:00Z",
        "550e8400-e29b-41d4-a716-446655440000", "$1,299.00", "build 4.0.0.1", "--", "1234", "12345",
        "123", "1", "9999", "0958", "eyJ", "gho_", "xox", "ASIA",
    ];
    const GLUE: &[&str] = &[
        " ", " ", "-", ".", ",", ":", "(", ")", "\n", "/", "+", "@", "_", "é", "", "x", "A", "e",
        "—",
    ];

    #[test]
    fn block_scan_finds_exactly_what_a_bytewise_scan_finds() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut found_any = 0;
        for round in 0..50_000 {
            let mut text = String::new();
            for _ in 0..1 + rand(24) {
                let piece = PIECES[rand(PIECES.len())];
                if rand(3) == 0 {
                    // A fragment: values cut anywhere are look-alikes too.
                    let (a, z) = (rand(piece.len() + 1), rand(piece.len() + 1));
                    text.push_str(piece.get(a.min(z)..a.max(z)).unwrap_or(piece));
                } else {
                    text.push_str(piece);
                }
                text.push_str(GLUE[rand(GLUE.len())]);
            }
            let mut fast = Vec::new();
            scan(&text, DetectorSet::all(), &mut fast);
            assert_eq!(
                fast,
                scan_bytewise(&text, DetectorSet::all()),
                "round {round}: {text:?}"
            );
            found_any += usize::from(!fast.is_empty());
        }
        assert!(
            found_any > 25_000,
            "the texts exercise the detectors: {found_any}"
        );
    }
}
