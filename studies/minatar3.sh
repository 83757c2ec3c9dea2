#!/bin/bash
# The MinAtar study (issue 26): Space Invaders -> Asterix -> Seaquest (configs/minatar3.yaml, 500k env
# steps per game), every built-in method, 5 seeds. Resumable: re-run the same command to continue.
#
#   OUT=DIR bash studies/minatar3.sh            # default OUT=runs/study-minatar3
#   SEEDS=1,2,3 OUT=DIR bash studies/minatar3.sh   # the first seeds only (report: OUT/report-s1-2-3)
#   SEEDS=1,2,3 REPORT_ONLY=1 OUT=DIR bash ...    # only that report, of runs already finished
#
# 1. tune: each regularization strength and BLIP's f_prior on a small grid, on the first task pair only
#    (Space Invaders -> Asterix), on seed 100, which is not reported, then two points further where
#    the choice was at the grid's edge; chosen = highest mean ACC over both (studies/choose.py). configs/minatar3.yaml's (and minatar5.yaml's) methods: section holds the
#    chosen values; the script stops here if they differ (SKIP_TUNE=1 skips tuning and the check).
# 2. the sweep: every method with the configs' (chosen) options, BLIP with both consolidations, seeds 1-5.
# 3. single-task references: ft on each game alone, same budget and evaluation schedule, seeds 1-5.
# 4. the report, with forward transfer against the references.
# Every run: fp32, 1 torch thread, as many at once as there are cores (blip-rl sweep on a local Ray).
set -euo pipefail
cd "$(dirname "$0")/.." && { [ -d .venv ] && . .venv/bin/activate; }
OUT=${OUT:-runs/study-minatar3}
ALL_SEEDS=1,2,3,4,5
SEEDS=${SEEDS:-$ALL_SEEDS}
# The report of every seed is OUT/report; of some (SEEDS=1,2,3), OUT/report-s1-2-3.
if [ "$SEEDS" = "$ALL_SEEDS" ]; then REPORT=${REPORT:-$OUT/report}; else REPORT=${REPORT:-$OUT/report-s${SEEDS//,/-}}; fi
# REPORT_ONLY=1: only the report, of runs already finished (while another invocation trains).
REPORT_ONLY=${REPORT_ONLY:-0}
TUNE_SEEDS=${TUNE_SEEDS:-100}
CONFIG=configs/minatar3.yaml
GAMES=minatar-spaceinvaders,minatar-asterix,minatar-seaquest
COMMON=(--config "$CONFIG" --precision fp32 --cpus-per-run 1)
mkdir -p "$OUT"
stamp() { echo "[$(date -u +%FT%TZ)] $*" | tee -a "$OUT/study.log"; }

if [ "${SKIP_TUNE:-0}" != 1 ] && [ "$REPORT_ONLY" != 1 ]; then
  stamp "tune: start"
  blip-rl sweep "${COMMON[@]}" --games minatar-spaceinvaders,minatar-asterix --seeds "$TUNE_SEEDS" \
    --methods ewc,l2,mas,si,bc-replay,l2-init,blip --out "$OUT/tune" \
    --grid methods.ewc.ewc_lambda=500,5000,50000 \
    --grid methods.l2.strength=0.1,1,10 \
    --grid methods.mas.strength=0.01,0.1,1 \
    --grid methods.si.strength=0.01,0.1,1 \
    --grid methods.bc-replay.strength=0.1,1,10 \
    --grid methods.l2-init.strength=1e-4,1e-3,1e-2 \
    --grid methods.blip.f_prior=1e-16,1e-14,1e-12
  [ -f "$OUT/tune-report/summary.json" ] || blip-rl report "$OUT"/tune/*-s* --out "$OUT/tune-report"
  python studies/choose.py "$OUT/tune-report/summary.json" --out "$OUT/chosen-first-grid.json"
  # The first grid put five of seven choices at its edge (chosen-first-grid.md marks them): each
  # of those axes goes two points (x10, x100) further, a new sweep beside the first, and the
  # choice is made over both.
  stamp "tune: widening the grid where the choice was at its edge"
  blip-rl sweep "${COMMON[@]}" --games minatar-spaceinvaders,minatar-asterix --seeds "$TUNE_SEEDS" \
    --methods l2,mas,si,l2-init,blip --out "$OUT/tune-wide" \
    --grid methods.l2.strength=100,1000 \
    --grid methods.mas.strength=10,100 \
    --grid methods.si.strength=10,100 \
    --grid methods.l2-init.strength=1e-5,1e-6 \
    --grid methods.blip.f_prior=1e-10,1e-8
  [ -f "$OUT/tune-wide-report/summary.json" ] || \
    blip-rl report "$OUT"/tune/*-s* "$OUT"/tune-wide/*-s* --out "$OUT/tune-wide-report"
  python studies/choose.py "$OUT/tune-wide-report/summary.json" --out "$OUT/chosen.json"
  stamp "tune: done (chosen: $OUT/chosen.md)"
  # The sweep below runs with the configs' options: they must be what tuning chose.
  python studies/choose.py --check configs/minatar3.yaml "$OUT/chosen.json"
  python studies/choose.py --check configs/minatar5.yaml "$OUT/chosen.json"
fi

if [ "$REPORT_ONLY" != 1 ]; then
  stamp "sweep: start"
  blip-rl sweep "${COMMON[@]}" --seeds "$SEEDS" --out "$OUT/sweep" \
    --methods blip,ewc,ft,ft-fix,l2,mas,si,packnet,bc-replay,shrink-perturb,redo,l2-init \
    --grid methods.blip.consolidation=keep,overwrite
  stamp "sweep: done"

  stamp "references: start"
  for game in ${GAMES//,/ }; do
    blip-rl sweep "${COMMON[@]}" --games "$game" --methods ft --seeds "$SEEDS" --out "$OUT/reference-$game"
  done
  stamp "references: done"
fi

# The report covers the seeds asked for: SEEDS=1,2,3 REPORT_ONLY=1 reports a sweep's first three
# seeds while the rest run (the full command adds seeds to a sweep or the references).
RUNS=(); REFS=()
for s in ${SEEDS//,/ }; do
  RUNS+=("$OUT"/sweep/*-s"$s")
  for game in ${GAMES//,/ }; do REFS+=("$OUT/reference-$game/ft-s$s"); done
done
[ -f "$REPORT/summary.json" ] || blip-rl report "${RUNS[@]}" --reference "${REFS[@]}" --out "$REPORT"
stamp "report: $REPORT"
