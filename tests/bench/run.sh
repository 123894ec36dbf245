#!/usr/bin/env bash
# The benchmark, in one command: builds the operator and the benchmark in release mode,
# then runs the benchmark (arguments are passed on), e.g.
#
#   tests/bench/run.sh                                   # N = 100, 1,000, 10,000; 300 s at rest;
#                                                        # the simulator answers reads after 2 ms
#                                                        # and writes after 10 ms, like a cluster
#   tests/bench/run.sh --sizes 100 --rest-seconds 30     # a quick look
#   tests/bench/run.sh --read-latency 0ms --write-latency 0ms
#                                                        # no latency model
#   tests/bench/run.sh --real-nomad --sizes 100          # against a real Nomad 1.1.2 dev agent
#
# Results: a table on stdout and bench-results/latest.json (see README "Benchmark").
set -euo pipefail
cd "$(dirname "$0")/../.."
# One invocation, so that both binaries share one feature resolution (no rebuilds).
cargo build --release -p nomad-operator -p nomad-bench --bins
exec target/release/nomad-bench "$@"
