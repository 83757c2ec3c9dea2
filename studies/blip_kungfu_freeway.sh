#!/bin/bash
# BLIP on Kung Fu then Freeway (issue 22), resumable: re-run to continue. OUT=DIR (default runs/kungfu-freeway).
# Kung Fu -> Freeway, 100k steps/game, 10 eval games, fp32, 1 thread, 2 runs at once.
cd "$(dirname "$0")/.." && { [ -d .venv ] && . .venv/bin/activate; }
OUT=${OUT:-runs/kungfu-freeway}; mkdir -p "$OUT"
export OUT
one() {
  name=$1; method=$2; seed=$3; shift 3
  d=$OUT/$name-s$seed
  # results.json is written after every game: a run is done when it holds every game
  if [ -f $d/results.json ] && python -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r['tasks_learned'] < len(r['tasks']))" $d/results.json 2>/dev/null; then return; fi
  if [ -f $d/config.yaml ]; then
    blip-rl train --resume $d --no-progress > $d.log 2>&1
  else
    blip-rl train --config configs/quick.yaml --games kungfu,freeway --method $method --steps-per-game 100000 \
      --eval-every 50000 --eval-episodes 10 --seed $seed --precision fp32 --threads 1 --run-dir $d --no-progress "$@" > $d.log 2>&1
  fi
}
export -f one
cat <<LIST | xargs -P 2 -L 1 bash -c 'one "$@"' _
blip blip 7
ft ft 7
blip blip 8
ft ft 8
blip blip 9
ft ft 9
ewc ewc 7
blip-over blip 7 --set methods.blip.consolidation=overwrite
ewc ewc 8
blip-over blip 8 --set methods.blip.consolidation=overwrite
ewc ewc 9
blip-over blip 9 --set methods.blip.consolidation=overwrite
packnet packnet 7
packnet packnet 8
packnet packnet 9
LIST
