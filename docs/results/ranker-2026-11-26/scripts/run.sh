#!/bin/bash
# Device run: the hybrid ranker (content half on CUDA) and LightGCN (CPU), one process each.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/pp && cp -r prism /tmp/pp/prism && cp -r evals /tmp/pp/prism/evals
export PYTHONPATH=/tmp/pp:/tmp/site PYTHONUNBUFFERED=1 FEAT=$PWD/.exp/feat.npz
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
cd .exp
R=/tmp/res; mkdir -p $R
T=${LIMIT:-400}
for s in 0 1 2; do THREADS=2 OUT=$R timeout $T python3 one.py hybrid leave_last_one all $s 30 > $R/h-llo-$s.log 2>&1 & done
for s in 0 1 2; do THREADS=1 OUT=$R timeout $T python3 one.py hybrid cold_items all $s 30 > $R/h-cold-$s.log 2>&1 & done
for s in 0 1 2; do THREADS=2 OUT=$R timeout $T python3 one.py lightgcn leave_last_one all $s 30 > $R/l-llo-$s.log 2>&1 & done
THREADS=1 OUT=$R timeout $T python3 one.py hybrid temporal all 0 30 > $R/h-t.log 2>&1 &
THREADS=1 OUT=$R timeout $T python3 one.py hybrid leave_last_one 4 0 30 > $R/h-llo4.log 2>&1 &
THREADS=1 OUT=$R timeout $T python3 one.py hybrid temporal 4 0 30 > $R/h-t4.log 2>&1 &
wait
tar czf $OUT/res.tgz -C /tmp res
grep -h -v Warning $R/*.log | tail -40
