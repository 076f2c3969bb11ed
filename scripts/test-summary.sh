#!/usr/bin/env bash
# test-summary.sh - passes `go test -v` output through and ends it with one line
# "N passed, N failed" (leaf tests and subtests), keeping go test's exit status.
set -uo pipefail
pass=0 fail=0 skip=0
while IFS= read -r line; do
  printf '%s\n' "$line"
  case $line in
    *"--- PASS: "*) pass=$((pass + 1)) ;;
    *"--- FAIL: "*) fail=$((fail + 1)) ;;
    *"--- SKIP: "*) skip=$((skip + 1)) ;;
    "FAIL"*|"panic: "*) seen_fail=1 ;;
  esac
done
printf '%d passed, %d failed, %d skipped\n' "$pass" "$fail" "$skip"
# go test's own status comes through PIPESTATUS in the Makefile; fail here too
# when any test or package failed, so a pipe never hides a failure.
if [[ $fail -gt 0 || ${seen_fail:-0} == 1 || $pass -eq 0 ]]; then exit 1; fi
