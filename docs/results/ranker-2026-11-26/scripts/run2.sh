#!/bin/bash
# Device run 2: LightGCN (CPU, 16 cores) and the hybrid (content half on CUDA), leave-last-one, seeds 0-2, same machine.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1 || exit 1
mkdir -p /tmp/pp && cp -r prism /tmp/pp/prism && cp -r evals /tmp/pp/prism/evals && cp -r tools /tmp/pp/prism/tools && cp -r prompts /tmp/pp/prism/prompts
export PYTHONPATH=/tmp/pp:/tmp/site PYTHONUNBUFFERED=1 FEAT=$PWD/.exp/feat.npz
cd .exp; R=/tmp/res; mkdir -p $R; T=${LIMIT:-240}
for s in 0 1 2; do THREADS=4 OUT=$R timeout $T python3 one.py lightgcn leave_last_one all $s 30 > $R/l-llo-$s.log 2>&1 & done
for s in 0 1 2; do THREADS=1 OUT=$R timeout $T python3 one.py hybrid leave_last_one all $s 30 > $R/h-llo-$s.log 2>&1 & done
wait
tar czf $OUT/res.tgz -C /tmp res
grep -h -v Warning $R/*.log | tail -20
