#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (a separate small build dir) and
# runs each for a bounded time on its seed corpus. Exits non-zero when a
# target finds a crash, a hang or a sanitizer report; the input is left in
# the artifacts folder.
#
#   tests/fuzz/run.sh                    # every target, 10 s each
#   ZM_FUZZ_SECONDS=60 tests/fuzz/run.sh fuzz_session
#
# Environment: ZM_FUZZ_BUILD_DIR (default build-fuzz), ZM_FUZZ_SECONDS
# (default 10; 0 skips), ZM_FUZZ_JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH="${ZM_FUZZ_SECONDS:-10}"
BUILD_DIR="${ZM_FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${ZM_FUZZ_JOBS:-$(nproc)}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_command fuzz_session fuzz_address
  fuzz_smtpserver_conf fuzz_scheduler_conf fuzz_router_conf fuzz_policy
  fuzz_aliases fuzz_control fuzz_ta_protocol fuzz_gossip)

if [ "$SECONDS_EACH" = 0 ]; then
  echo "fuzz: skipped (ZM_FUZZ_SECONDS=0)"
  exit 0
fi
if ! command -v clang++ >/dev/null; then
  echo "fuzz: SKIPPED: clang++ not found (scripts/install-deps installs clang and libclang-rt-14-dev)"
  exit 0
fi

cmake -S tests/fuzz -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
ninja -C "$BUILD_DIR" -j"$JOBS" "${TARGETS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$BUILD_DIR/artifacts"
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$work/$t"
  echo "fuzz: $t for ${SECONDS_EACH}s"
  # New inputs go to the scratch folder; the seed corpus in the tree is
  # only read.
  if ! "$BUILD_DIR/$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD_DIR/artifacts/$t-" \
      "$work/$t" "tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; input in $BUILD_DIR/artifacts/"
    tail -40 "$work/$t.log"
    status=1
  else
    grep -E '^stat::number_of_executed_units|^Done' "$work/$t.log" || true
  fi
done
exit $status
