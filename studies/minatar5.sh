#!/bin/bash
# The five-game MinAtar study (issue 26): Space Invaders -> Asterix -> Seaquest -> Breakout ->
# Freeway (configs/minatar5.yaml, 500k env steps per game) for the methods that matter most, seeds 1-5.
# Resumable: re-run the same command to continue.
#
#   OUT=DIR REFERENCES=M3_OUT bash studies/minatar5.sh     # defaults: runs/study-minatar5, runs/study-minatar3
#
# The strengths are minatar3's tuned values (the same first task pair; configs/minatar5.yaml holds
# them). The single-task references live with minatar3's (REFERENCES: that study's OUT): the three
# games they share are reused, Breakout and Freeway are added beside them (same config, budget and
# evaluation schedule, seeds 1-5).
set -euo pipefail
cd "$(dirname "$0")/.." && { [ -d .venv ] && . .venv/bin/activate; }
OUT=${OUT:-runs/study-minatar5}
REFERENCES=${REFERENCES:-runs/study-minatar3}
ALL_SEEDS=1,2,3,4,5
SEEDS=${SEEDS:-$ALL_SEEDS}
# The report of every seed is OUT/report; of some (SEEDS=1,2,3), OUT/report-s1-2-3.
if [ "$SEEDS" = "$ALL_SEEDS" ]; then REPORT=${REPORT:-$OUT/report}; else REPORT=${REPORT:-$OUT/report-s${SEEDS//,/-}}; fi
# REPORT_ONLY=1: only the report, of runs already finished (while another invocation trains).
REPORT_ONLY=${REPORT_ONLY:-0}
COMMON=(--precision fp32 --cpus-per-run 1)
mkdir -p "$OUT" "$REFERENCES"
stamp() { echo "[$(date -u +%FT%TZ)] $*" | tee -a "$OUT/study.log"; }

# The tuned strengths: configs/minatar5.yaml must hold what minatar3's tuning chose.
[ "${SKIP_CHECK:-0}" = 1 ] || [ "$REPORT_ONLY" = 1 ] || python studies/choose.py --check configs/minatar5.yaml "$REFERENCES/chosen.json"

GAMES="minatar-spaceinvaders minatar-asterix minatar-seaquest minatar-breakout minatar-freeway"
if [ "$REPORT_ONLY" != 1 ]; then
  stamp "sweep: start"
  blip-rl sweep --config configs/minatar5.yaml "${COMMON[@]}" --seeds "$SEEDS" --out "$OUT/sweep" \
    --methods blip,ewc,ft,packnet,bc-replay,si
  stamp "sweep: done"

  stamp "references: start"
  for game in $GAMES; do
    blip-rl sweep --config configs/minatar3.yaml "${COMMON[@]}" --games "$game" --methods ft --seeds "$SEEDS" \
      --out "$REFERENCES/reference-$game"
  done
  stamp "references: done"
fi

# The report covers the seeds asked for (SEEDS=1,2,3 REPORT_ONLY=1: the first three while the rest run).
RUNS=(); REFS=()
for s in ${SEEDS//,/ }; do
  RUNS+=("$OUT"/sweep/*-s"$s")
  for game in $GAMES; do REFS+=("$REFERENCES/reference-$game/ft-s$s"); done
done
[ -f "$REPORT/summary.json" ] || blip-rl report "${RUNS[@]}" --reference "${REFS[@]}" --out "$REPORT"
stamp "report: $REPORT"
