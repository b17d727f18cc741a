#!/bin/bash
# Device run 3: everything on the CPU (16 cores, 2 threads per process, BLAS capped too):
# hybrid vs LightGCN leave-last-one seeds 0-2 side by side, hybrid cold/temporal/>=4 seed 0.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1 || exit 1
mkdir -p /tmp/pp && cp -r prism /tmp/pp/prism && cp -r evals /tmp/pp/prism/evals && cp -r tools /tmp/pp/prism/tools && cp -r prompts /tmp/pp/prism/prompts
export PYTHONPATH=/tmp/pp:/tmp/site PYTHONUNBUFFERED=1 FEAT=$PWD/.exp/feat.npz DEVICE=cpu CUDA_VISIBLE_DEVICES=
lscpu | grep -E "Model name|^CPU\(s\)"
cd .exp; R=/tmp/res; mkdir -p $R; T=${LIMIT:-480}
go() { t=$1; shift; OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t THREADS=$t OUT=$R timeout $T python3 one.py "$@"; }
for s in 0 1 2; do go 2 lightgcn leave_last_one all $s 30 > $R/l-llo-$s.log 2>&1 & done
for s in 0 1 2; do go 2 hybrid leave_last_one all $s 30 > $R/h-llo-$s.log 2>&1 & done
go 2 hybrid cold_items all 0 30 > $R/h-cold-0.log 2>&1 &
go 1 hybrid temporal all 0 30 > $R/h-t.log 2>&1 &
go 1 hybrid leave_last_one 4 0 30 > $R/h-llo4.log 2>&1 &
go 1 hybrid temporal 4 0 30 > $R/h-t4.log 2>&1 &
wait
tar czf $OUT/res.tgz -C /tmp res
grep -h -v Warning $R/*.log | tail -30
