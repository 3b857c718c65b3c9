#!/bin/sh
# The CPU performance targets of issue 5, measured in one run: fusedopt vs torch fused AdamW /
# SGD-momentum (and LAMB vs fusedopt AdamW) on 64M elements as one tensor, as GPT-2-small-like
# (148 tensors) and BERT-large-like (391 tensors) lists, and on 2000 x 256 tensors.
# Only the implementations the targets compare are timed, so it is quicker than the default run.
# Extra arguments go to the CLI (e.g. --repeats 20 --out DIR).
set -e
cd "$(dirname "$0")/.."
exec python -m fusedopt.bench --layouts single,gpt2,bert-large,tiny --impls fusedopt,fused \
    --no-peers --sweep none --out "${OUT:-bench_results/targets}" "$@"
