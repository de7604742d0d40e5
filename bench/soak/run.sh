#!/usr/bin/env bash
# The soak: the crash test (tests/integration/test_crash.py) run long.
# Mail flows through sendmail and SMTP for --duration seconds while
# --kills SIGKILLs, spread over that time, hit the router, the scheduler,
# the smtpserver and mailbox agents; then the queue drains and every
# acknowledged message is looked for in the mailbox. Prints the faults
# injected, messages acknowledged, lost (must be 0) and duplicated, and
# exits non-zero if anything acknowledged was lost.
#
#   bench/soak/run.sh --bin build/bin --duration 600 --kills 60
#
# Options: --bin DIR (the programs; default build/bin), --duration S (600),
# --kills N (duration / 10), --seed N (random), --drain S (bound for the
# final drain, 900).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=build/bin duration=600 kills="" seed="" drain=900
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --kills) kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --drain) drain=$2; shift 2 ;;
    *) echo "usage: $0 [--bin DIR] [--duration S] [--kills N] [--seed N] [--drain S]" >&2
       exit 64 ;;
  esac
done
[ -n "$kills" ] || kills=$(( duration / 10 > 0 ? duration / 10 : 1 ))
[ -x "$bin/smtpserver" ] || { echo "no programs in $bin (build first)" >&2; exit 66; }

export ZM_BIN=$(cd "$bin" && pwd)
export ZM_CRASH_DURATION=$duration ZM_CRASH_KILLS=$kills ZM_CRASH_DRAIN=$drain
export ZM_CRASH_MESSAGES=0 ZM_CRASH_MAX_MESSAGES=1000000
# Kills every few seconds drive the supervisor's restart back-off to 60 s:
# a submitter keeps retrying through such an outage rather than give up.
export ZM_CRASH_MAX_ATTEMPTS=2000
[ -z "$seed" ] || export ZM_CRASH_SEED=$seed
export PYTHONDONTWRITEBYTECODE=1

log=$(mktemp /tmp/zm-soak-XXXXXX.log)
echo "soak: ${duration}s, $kills kills, programs in $ZM_BIN; output in $log"
start=$(date +%s)
status=0
/usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
    tests/integration/test_crash.py >"$log" 2>&1 || status=$?
end=$(date +%s)
grep -E '^crash test seed|^faults injected|^messages submitted|^duplicates|^delivered but never|^partial|^abandoned|^spool at the end|^CRASH SUMMARY' "$log" || true
echo "soak: wall time $(( end - start ))s (load ${duration}s, then drain and checks)"
if [ $status -ne 0 ]; then
  echo "soak: FAILED (pytest exit $status); see $log"
  tail -40 "$log"
fi
exit $status
