#!/bin/bash
# Device run 4: all on the CPU as run 3: temporal split, hybrid vs LightGCN seeds 0-2 side by side;
# hybrid >=4-star variants seeds 1-2.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >/dev/null 2>&1 || exit 1
mkdir -p /tmp/pp && cp -r prism /tmp/pp/prism && cp -r evals /tmp/pp/prism/evals && cp -r tools /tmp/pp/prism/tools && cp -r prompts /tmp/pp/prism/prompts
export PYTHONPATH=/tmp/pp:/tmp/site PYTHONUNBUFFERED=1 FEAT=$PWD/.exp/feat.npz DEVICE=cpu CUDA_VISIBLE_DEVICES=
cd .exp; R=/tmp/res; mkdir -p $R; T=${LIMIT:-330}
go() { t=$1; shift; OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t THREADS=$t OUT=$R timeout $T python3 one.py "$@"; }
for s in 0 1 2; do go 2 lightgcn temporal all $s 30 > $R/l-t-$s.log 2>&1 & done
for s in 0 1 2; do go 2 hybrid temporal all $s 30 > $R/h-t-$s.log 2>&1 & done
for s in 1 2; do go 1 hybrid leave_last_one 4 $s 30 > $R/h-llo4-$s.log 2>&1 & done
wait
tar czf $OUT/res.tgz -C /tmp res
grep -h -v -e Warning -e sparse_coo $R/*.log | tail -30
