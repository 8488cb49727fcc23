#!/bin/sh
# The exact commands that made the figures in docs/figures/.
# Run from the repository root with the [sweep] and [plot] extras installed:
#   sh docs/figures/make_figures.sh
set -e
SC="${PYTHON:-python} -m scconvex"
OUT=docs/figures
DB="${TMPDIR:-/tmp}/scconvex-figures"
rm -rf "$DB" && mkdir -p "$DB"

# The 21-solve example: STEP, k = 10, half majority, n_min = 5.
$SC sweep --step-k 10 --rho 0.5 --n-min 5 --R 1,2,5,10,20,50,100 --tau 0.1,0.5,1 \
    --atlas "$DB/runs.sqlite" --workers 2
$SC plot "$DB/runs.sqlite" --kind cosines --out $OUT/cosines.png
$SC plot "$DB/runs.sqlite" --kind tau --where R=100 --out $OUT/tau_R100.png
$SC plot "$DB/runs.sqlite" --kind gap --out $OUT/gap.png

# The 1,000-point grid: 40 values of R in [1, 1e4] x 25 values of tau in [0.02, 5].
$SC sweep --step-k 10 --rho 0.5 --n-min 5 --R logspace:1:1e4:40 --tau logspace:0.02:5:25 \
    --atlas "$DB/grid.sqlite" --workers 2
$SC plot "$DB/grid.sqlite" --kind phase --out $OUT/phase.png
$SC plot "$DB/grid.sqlite" --kind cosines --where tau=0.02 --out $OUT/cosines_tau002.png

# The uniqueness map: 13 values of R in [1, 1e6] x 10 values of tau in [0.02, 5].
$SC sweep --step-k 10 --rho 0.5 --n-min 5 --R logspace:1:1e6:13 --tau logspace:0.02:5:10 \
    --atlas "$DB/uniq.sqlite" --workers 2
$SC plot "$DB/uniq.sqlite" --kind uniqueness --out $OUT/uniqueness.png

# Tightness rows: STEP k = 4, R = 10, d = 2, 3, 4, 8 restarts each.
$SC sweep --step-k 4 --rho 0.5 --n-min 5 --R 10 --tau logspace:0.05:2:8 --dims 2,3,4 \
    --restarts 8 --atlas "$DB/tight.sqlite" --workers 2
$SC plot "$DB/tight.sqlite" --kind landscape --out $OUT/landscape.png

# One geometry: a long tail of 12 classes (heatmap) and STEP k = 4 on the sphere.
$SC sweep --long-tail-k 12 --n-max 500 --R 100 --tau 0.2 --counts 100x2,10x2 \
    --atlas "$DB/one.sqlite" --workers 0
$SC plot "$DB/one.sqlite" --kind gram --where family=long_tail --out $OUT/gram_long_tail.png
$SC plot "$DB/one.sqlite" --kind sphere --where family=counts --out $OUT/sphere.png
$SC atlas export "$DB/runs.sqlite" --csv $OUT/runs.csv
