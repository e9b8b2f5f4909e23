//! Host glue of tool pinning (`mcp_core::pinning`): the per-worker verdict cache, the
//! cross-worker quarantine state in the VM's shared data, counters, logs and filter state.
//! Every decision is `mcp_core::pinning`'s; this file only moves bytes to and from the host.

use filter_host::abi;
use filter_host::metrics::{Counter, Gauge, Registry};
use mcp_core::pinning::{
    CallCheck, Pinning, PinningConfig, QuarantineState, Reason, Verdict, VerdictCache,
};
use std::cell::RefCell;
use std::collections::HashSet;

/// Filter state key: names quarantined in this request's lists, or the refused call's name.
pub const QUARANTINED_PROPERTY: &str = "mcp.tools.quarantined";
/// Longest name shown in a log line (names come from the server).
const LOG_NAME_CHARS: usize = 128;
/// Tries of a compare-and-swap write of the shared state before giving up (and logging).
const CAS_TRIES: usize = 4;

/// Per-VM pinning state.
#[derive(Debug)]
pub struct Pins {
    policy: Pinning,
    verdicts: RefCell<VerdictCache>,
    /// Shared-data key of the quarantine state; named after the configuration, so a new
    /// approval starts from "no listing seen".
    key: String,
    /// The state as last read.
    memo: RefCell<Memo>,
    /// Bumped by every worker after each write of the state: a worker whose memo carries the
    /// current value skips reading the state (a gauge read is one host call; a shared-data
    /// read also copies the value into the VM).
    version: Gauge,
    drift: Counter,
    unpinned: Counter,
    poisoning: Counter,
    flagged: Counter,
    calls_refused: Counter,
}

/// What one listed tool gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Listed as is.
    Keep,
    /// Removed from the list.
    Quarantine,
}

impl Pins {
    pub fn new(cfg: &PinningConfig, m: &mut Registry) -> Result<Pins, String> {
        let policy = Pinning::compile(cfg).map_err(|e| e.to_string())?;
        let key = format!("mcp_tools.quarantine.{}", policy.id());
        // Created empty when the configuration loads, before this VM serves a request: from
        // then on every write is a compare-and-swap (a write to an absent key cannot be one).
        if let Ok((None, _)) = abi::get_shared_data(&key) {
            let empty = QuarantineState::default().encode();
            if let Err(e) = abi::set_shared_data(&key, &empty, 0) {
                filter_host::log!(Warn, "cannot create the tool quarantine state: {e}");
            }
        }
        Ok(Pins {
            policy,
            verdicts: RefCell::new(VerdictCache::default()),
            key,
            memo: RefCell::new(Memo::default()),
            version: m.gauge("mcp_tools.quarantine_state_version"),
            drift: m.counter("mcp_tools.quarantined_drift"),
            unpinned: m.counter("mcp_tools.quarantined_unpinned"),
            poisoning: m.counter("mcp_tools.quarantined_poisoning"),
            flagged: m.counter("mcp_tools.poisoning_flagged"),
            calls_refused: m.counter("mcp_tools.quarantine_calls_refused"),
        })
    }

    /// Brings the memo up to date: read again only when some worker wrote since it was read
    /// (or `force`: a compare-and-swap just failed). `false` when the host refused the read
    /// (the caller fails closed).
    fn refresh(&self, force: bool) -> bool {
        // Read before the state: a write that lands in between bumps it after, so the next
        // refresh reads again.
        let version = self.version.get();
        if !force && version.is_some() && self.memo.borrow().version == version {
            return true;
        }
        match abi::get_shared_data(&self.key) {
            Ok((Some(bytes), cas)) => {
                let mut memo = self.memo.borrow_mut();
                if memo.cas != cas || cas == 0 {
                    memo.state = QuarantineState::decode(&bytes);
                    memo.cas = cas;
                }
                memo.version = version;
                true
            }
            Ok((None, _)) => {
                *self.memo.borrow_mut() = Memo {
                    version,
                    ..Memo::default()
                };
                true
            }
            Err(e) => {
                filter_host::log!(Warn, "cannot read the tool quarantine state: {e}");
                self.memo.borrow_mut().version = None;
                false
            }
        }
    }

    /// Whether a `tools/call` to `name` is refused (counted when it is).
    pub fn refuses_call(&self, name: &str) -> bool {
        let refused = match self.policy.call(name) {
            CallCheck::Pass => false,
            CallCheck::Refuse(_) => true,
            CallCheck::Latest => {
                !self.refresh(false) || self.memo.borrow().state.refuses(&self.policy, name)
            }
        };
        if refused {
            self.calls_refused.inc();
        }
        refused
    }

    /// Starts reading one list: the state is read once for the whole list.
    pub fn begin_list(&self) -> ListRun {
        let readable = self.refresh(false);
        ListRun {
            nothing_recorded: readable && self.memo.borrow().state.is_empty(),
            readable,
            changed: Vec::new(),
            quarantined: Vec::new(),
            quarantined_set: HashSet::new(),
            counts: [0; 4],
        }
    }

    /// The decision on one listed tool. A name listed twice is quarantined when any of its
    /// copies is (fail closed: the server may answer a call with either); a copy listed before
    /// the quarantined one is removed by the caller's second pass ([`ListRun::quarantined`]).
    pub fn listed(&self, run: &mut ListRun, name: &str, tool: &[u8]) -> Listed {
        let (verdict, fresh) = self.verdicts.borrow_mut().check(&self.policy, name, tool);
        if fresh {
            log_verdict(name, &verdict);
        }
        if verdict.quarantine.is_none()
            && verdict.marker.is_none()
            && run.nothing_recorded
            && !run.is_quarantined(name)
        {
            // The steady state: a clean tool, and nothing to lift (the state held no name
            // when the list began; names this list added are in `run.quarantined`).
            return Listed::Keep;
        }
        let slot = match verdict.quarantine {
            Some(Reason::Drift) => Some(0),
            Some(Reason::Unpinned) => Some(1),
            Some(Reason::Poisoning) => Some(2),
            None if verdict.marker.is_some() => Some(3),
            None => None,
        };
        if let Some(c) = slot.and_then(|i| run.counts.get_mut(i)) {
            *c += 1;
        }
        let quarantined = verdict.quarantine.is_some() || run.is_quarantined(name);
        if verdict.quarantine.is_some() && run.quarantined_set.insert(name.to_owned()) {
            run.quarantined.push(name.to_owned());
        }
        if self
            .memo
            .borrow_mut()
            .state
            .record(&self.policy, name, quarantined)
        {
            run.changed.push((name.to_owned(), quarantined));
        }
        if quarantined {
            Listed::Quarantine
        } else {
            Listed::Keep
        }
    }

    /// Ends one list: counts it and publishes what changed to the other workers
    /// (compare-and-swap).
    pub fn end_list(&self, run: ListRun) {
        let [drift, unpinned, poisoning, flagged] = run.counts;
        self.drift.add(drift);
        self.unpinned.add(unpinned);
        self.poisoning.add(poisoning);
        self.flagged.add(flagged);
        if run.changed.is_empty() && run.readable {
            return;
        }
        for _ in 0..CAS_TRIES {
            let (cas, body) = {
                let memo = self.memo.borrow();
                (memo.cas, memo.state.encode())
            };
            match abi::set_shared_data(&self.key, &body, cas) {
                Ok(()) => {
                    // The host bumped the CAS: read it again next time; tell the other
                    // workers to.
                    {
                        let mut memo = self.memo.borrow_mut();
                        memo.cas = 0;
                        memo.version = None;
                    }
                    self.version.inc();
                    return;
                }
                Err(e) if e.status == abi::CAS_MISMATCH => {
                    // Another worker wrote meanwhile: apply this listing on top of its state.
                    if !self.refresh(true) {
                        break;
                    }
                    let mut memo = self.memo.borrow_mut();
                    for (name, quarantined) in &run.changed {
                        memo.state.record(&self.policy, name, *quarantined);
                    }
                }
                Err(e) => {
                    filter_host::log!(Warn, "cannot write the tool quarantine state: {e}");
                    return;
                }
            }
        }
        filter_host::log!(
            Warn,
            "the tool quarantine state kept changing under this worker; not written"
        );
    }
}

/// The quarantine state as this worker last read it.
#[derive(Debug, Default)]
struct Memo {
    /// Its CAS (0 = decode it again).
    cas: u32,
    /// The version gauge when it was read (`None` = read it again).
    version: Option<u64>,
    state: QuarantineState,
}

/// One list being read.
#[derive(Debug)]
pub struct ListRun {
    readable: bool,
    /// The state was read and quarantined nothing when the list began.
    nothing_recorded: bool,
    /// Names whose recorded state this list changed (replayed on a CAS conflict).
    changed: Vec<(String, bool)>,
    /// Names quarantined in this list (each once), in listing order, and as a set (a list
    /// may hold thousands of quarantined names).
    quarantined: Vec<String>,
    quarantined_set: HashSet<String>,
    /// Tools counted by reason: drift, unpinned, poisoning, flagged (one `add` per list).
    counts: [u64; 4],
}

impl ListRun {
    /// Whether some copy of `name` was quarantined in this list so far.
    pub fn is_quarantined(&self, name: &str) -> bool {
        !self.quarantined_set.is_empty() && self.quarantined_set.contains(name)
    }

    /// The names quarantined in this list, in listing order.
    pub fn quarantined(&self) -> &[String] {
        &self.quarantined
    }
}

fn short(name: &str) -> String {
    let s: String = name.chars().take(LOG_NAME_CHARS).collect();
    format!("{s:?}")
}

/// One line per definition a worker sees for the first time; never the definition's text.
fn log_verdict(name: &str, v: &Verdict) {
    let fp = v
        .fingerprint()
        .unwrap_or_else(|| "none (no canonical form)".to_owned());
    let marker = v.marker.map_or("", |m| m.as_str());
    match v.quarantine {
        Some(reason) => filter_host::log!(
            Warn,
            "quarantined tool {}: reason={} marker={} listed={}",
            short(name),
            reason.as_str(),
            if marker.is_empty() { "none" } else { marker },
            fp
        ),
        None if v.marker.is_some() => filter_host::log!(
            Warn,
            "tool {} flagged: marker={} listed={} (kept: poisoning \"flag\")",
            short(name),
            marker,
            fp
        ),
        None => {}
    }
}

/// Publishes the names quarantined or refused in this request.
pub fn publish(names: &str) {
    if let Err(e) = abi::set_property(&[QUARANTINED_PROPERTY], names.as_bytes()) {
        filter_host::log!(Debug, "set_property {QUARANTINED_PROPERTY}: {e}");
    }
}
