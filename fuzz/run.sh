#!/usr/bin/env bash
# Builds the libFuzzer binaries of fuzz/ on the stable toolchain and runs each target for a
# bounded time (see fuzz/README.md). Used by `make fuzz`; runnable on its own:
#
#   fuzz/run.sh                       # every target, FUZZ_SECONDS (60) each
#   FUZZ_SECONDS=300 fuzz/run.sh sse  # one target, five minutes
#   fuzz/run.sh --build-only
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (default: all), FUZZ_BUILD_JOBS (cargo
# -j, default 2), FUZZ_ARGS (extra libFuzzer flags), CARGO, CARGO_TARGET_DIR.
# New inputs go to target/fuzz-work/corpus/<target>/ (fuzz/corpus/ is only read); a crash leaves
# target/fuzz-work/artifacts/<target>/crash-<sha1> and makes the script exit non-zero.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_BUILD_JOBS:-2}
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
all_targets="json sse tools_list pii scopes pinning"

build_only=0
targets=()
for a in "$@"; do
  case $a in
    --build-only) build_only=1 ;;
    *) targets+=("$a") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then read -ra targets <<< "${FUZZ_TARGETS:-$all_targets}"; fi

# libFuzzer is C++, built by libfuzzer-sys's build script.
if ! command -v c++ >/dev/null; then
  echo "installing g++ (Debian) for libFuzzer"
  apt-get install -y -qq g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; }
fi

# Why this works on stable: cargo-fuzz's instrumentation is plain codegen options. sancov-module
# is LLVM's SanitizerCoverage pass; libFuzzer (linked by libfuzzer-sys) provides the callbacks.
# No -Zsanitizer: panics (what the targets report) and overflow checks need no ASan in safe Rust.
# --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
# A profile of its own (release codegen, no LTO, symbols kept for readable crash stacks), so the
# shipped release profile and its artifacts are untouched.
profile=(--config 'profile.fuzz.inherits="release"' --config profile.fuzz.lto=false
         --config profile.fuzz.codegen-units=16 --config profile.fuzz.strip=false
         --config profile.fuzz.debug=1 --profile fuzz)
bins=()
for t in "${targets[@]}"; do bins+=(--bin "fuzz_$t"); done
"$cargo" build -j "$jobs" --target "$triple" "${profile[@]}" -p mcp-fuzz --features libfuzzer "${bins[@]}"
[ $build_only -eq 1 ] && exit 0

bin_dir=$target_dir/$triple/fuzz
work=$target_dir/fuzz-work
summary=()
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "$work/logs"
  log=$work/logs/$t.log
  echo "== fuzz_$t: ${seconds}s (log: $log)"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  # shellcheck disable=SC2086
  if ! "$bin_dir/fuzz_$t" "$work/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t/" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    status=1
    echo "!! fuzz_$t found a failure:"
    grep -E "panicked at|^Error|SUMMARY|Test unit written" "$log" | head -8 || tail -20 "$log"
  fi
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  [ -n "$done_line" ] || done_line=$(grep -E "^#[0-9]+[[:space:]]" "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$done_line")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<< "$done_line")
  summary+=("$(printf '%-11s %12s %10s %8s %8s %14s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done
printf '\n%-11s %12s %10s %8s %8s %14s\n' target execs exec/s cov ft corpus
printf '%s\n' "${summary[@]}"
exit $status
