#!/bin/sh
# Captures test/corpus/kernel-records.log.gz: what the real kernel sends,
# as the real auditd logs it (RAW), under a realistic rule set (program
# executions, a watched directory, reads of /etc/passwd and /etc/shadow,
# connect/bind/listen/accept) while a small shell workload runs with its
# own login uid (the rules select it, so nothing else is recorded).
# The Go side is bench/corpus_test.go (TestIntegrationCaptureCorpus).
#
# Needs root with CAP_AUDIT_CONTROL, the auditd package and no other audit
# daemon registered. Takes the kernel test lock (/run/auditd-ns-test.lock)
# and restores the kernel's audit state afterwards.
#
# Usage: test/corpus/capture.sh [-capture-iterations N]
set -eu
cd "$(dirname "$0")/../.."
out="$PWD/test/corpus/kernel-records.log.gz"
AUDITD_NS_BENCH=1 exec go test -count=1 -timeout 10m -run '^TestIntegrationCaptureCorpus$' -v ./bench -args -capture "$out" "$@"
