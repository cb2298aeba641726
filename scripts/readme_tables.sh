#!/usr/bin/env bash
# Regenerates every result table of the README on the shipped test images (test1000), 2-core CPU, seed 0.
# All runs share one adversarial-example cache, resume after a kill, and print their wall time.
#
#   OMP_NUM_THREADS=1 scripts/readme_tables.sh [STEP ...]     steps: table2 table2-r18 table8 table1 table15
#                                                                      table3 table3-protocols table5 table7 nrp diffpure table5-diffpure
#                                                                      table3-diffpure bf16 table16-diffpure
#                                                                      randomization (not in the default: table2 and
#                                                                      table3 include it)
#                                                                      (default: all)
set -euo pipefail
IRAD=${IRAD:-.venv/bin/irad}  # a command line, e.g. "python3 -m irad" (left unquoted below)
OUT=${OUT:-results}
CACHE="$OUT/cache"
CLASSIC=(--defense bit-reduction --defense jpeg --defense randomization --defense median --defense stl)
NAIVE=(--defense nearest-si --defense nearest-sv --defense bilinear-si --defense bilinear-sv)
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(table2 table8 table1 table15 table3 table5 table2-r18 nrp diffpure table5-diffpure table3-diffpure table16-diffpure bf16 table7)

run() {  # run NAME ARGS...: one evaluation, timed, into $OUT/NAME
    local name=$1
    shift
    local t0=$SECONDS resumed=""
    [ -f "$OUT/$name/results.json" ] && resumed=" [results.json existed: its finished rows were reused]"
    $IRAD evaluate --cache "$CACHE" --out "$OUT/$name" "$@" > "$OUT/$name.out" 2>&1
    echo "$name: $((SECONDS - t0)) s$resumed  ($IRAD evaluate $*)" | tee -a "$OUT/timings.txt"
}

slug() { echo "$1" | tr -c 'a-z0-9\n' '-'; }  # a defense spec as a folder name

mkdir -p "$OUT"
for step in "${STEPS[@]}"; do
    case $step in
    table2)  # oblivious AutoAttack (standard), the paper's Table 2 (+ the naive samplers of Table 1)
        run table2 --preset table2 --victim resnet32 --victim resnet20 --defense none "${CLASSIC[@]}" "${NAIVE[@]}" \
            --defense disco --defense irad -n 500 ;;
    table2-r18)  # the AutoAttack package's ResNet-18 (10x slower to attack on a CPU: 100 images, fewer defenses)
        run table2-r18 --preset table2 --victim resnet18 --defense none --defense jpeg --defense stl \
            --defense bilinear-si --defense disco --defense irad -n 100 ;;
    table8)  # sampling ablation with the implicit reconstruction
        run table8 --preset table8 --victim resnet32 --victim resnet20 -n 500 ;;
    table1)  # naive resampling: shift size d (SI) and range gamma (SV)
        run table1 --victim resnet32 --victim resnet20 --attack autoattack -n 500 \
            --defense none --defense nearest-si:d=0.5 --defense nearest-si:d=1.0 --defense nearest-si:d=1.5 \
            --defense bilinear-si:d=0.5 --defense bilinear-si:d=1.0 --defense bilinear-si:d=1.5 \
            --defense nearest-sv:gamma=0.5 --defense nearest-sv:gamma=1.0 --defense nearest-sv:gamma=1.5 \
            --defense bilinear-sv:gamma=0.5 --defense bilinear-sv:gamma=1.0 --defense bilinear-sv:gamma=1.5 ;;
    table15)  # SampleNet with other reconstructions (IRAD's SampleNet transferred; see README)
        run table15 --preset table15 --victim resnet32 --victim resnet20 -n 500 ;;
    table3)  # adaptive BPDA: PGD-20 (EOT over 8 passes for randomized defenses); the figures in docs/results.md.
             # (The preset itself now runs the paper's protocol and a strong one: see table3-protocols.)
        run table3 --preset table3 --attack pgd:steps=20 --victim resnet32 --victim resnet20 --defense none \
            "${CLASSIC[@]}" "${NAIVE[@]}" --defense disco --defense irad -n 200 ;;
    table3-protocols)  # the paper's BPDA protocol (pgd-paper: 10 x 1/255, no random start, no EOT) beside a
                       # strong one (pgd-strong: 50 x 2/255, random start, EOT over 8 passes)
        run table3-protocols --preset table3 --victim resnet32 --defense none --defense jpeg --defense bilinear-sv \
            --defense disco --defense irad -n 100 ;;
    table5)  # full-gradient AutoAttack (standard) through the whole pipeline; LIIF back-propagates at a few
             # images/s on a CPU, hence 24 images; the naive shifts (where BPDA's identity backward misleads) on 200
        # (the preset's DiffPure rows need a GPU: AutoAttack through 20-100 reverse-SDE steps with EOT)
        run table5 --preset table5 --victim resnet32 --defense disco --defense irad -n 24
        run table5-naive --preset table5 --victim resnet32 --defense nearest-si --defense bilinear-si -n 200 ;;
    nrp)  # the NRP baseline (its own trained purifier)
        run table2-nrp --preset table2 --victim resnet32 --victim resnet20 --defense nrp -n 500
        run table3-nrp --preset table3 --attack pgd:steps=20 --victim resnet32 --defense nrp -n 200 ;;
    diffpure)  # DiffPure and IRAD+DiffPure purify in 20-100 SDE steps: 100 images
        run table2-diffpure --preset table2 --victim resnet32 --defense diffpure \
            --defense diffpure:t_star=0.02,steps=20 --defense irad+diffpure -n 100 ;;
    table5-diffpure)  # full-gradient PGD-10 with EOT over 4 passes through the short DiffPure, without and with
                      # IRAD after it, and through the 100-step DiffPure (the paper's Table 5 claim, checked at a
                      # CPU's scale: 16 images)
        for d in diffpure:t_star=0.02,steps=20 irad+diffpure; do
            run "table5-$(slug "$d")" --victim resnet32 --threat-model full-gradient \
                --attack pgd:steps=10 --eot-samples 4 --defense "$d" -n 16 --repeats 1
        done
        run table5-diffpure-100 --victim resnet32 --threat-model full-gradient \
            --attack pgd:steps=10 --eot-samples 4 --defense diffpure -n 16 --repeats 1 ;;
    table16-diffpure)  # Table 16 at a CPU's scale: t = 40 and 30 (t* = 0.04 / 0.03, 40 / 30 steps), DiffPure
                       # without and with IRAD after it, full-gradient PGD-10 with EOT over 4 passes, 16 images
        for d in diffpure:t_star=0.04,steps=40 irad+diffpure:t_star=0.04,steps=40 \
                 diffpure:t_star=0.03,steps=30 irad+diffpure:t_star=0.03,steps=30; do
            run "table16-$(slug "$d")" --victim resnet32 --threat-model full-gradient \
                --attack pgd:steps=10 --eot-samples 4 --defense "$d" -n 16 --repeats 1
        done ;;
    randomization)  # random resizing + padding, drawn per image since session 5 (it was one draw per batch):
                    # its Table 2 and Table 3 rows again
        run table2-randomization --preset table2 --victim resnet32 --victim resnet20 --defense randomization -n 500
        run table3-randomization --preset table3 --attack pgd:steps=20 --victim resnet32 --victim resnet20 --defense randomization -n 200 ;;
    table3-diffpure)  # BPDA PGD-20 (EOT 8) on the short DiffPure without and with IRAD after it, and on the
                      # 100-step DiffPure (about 4 CPU minutes per image): 16 images
        for d in diffpure:t_star=0.02,steps=20 irad+diffpure; do
            run "table3-$(slug "$d")" --preset table3 --attack pgd:steps=20 --victim resnet32 --defense "$d" -n 16
        done
        run table3-diffpure-100 --preset table3 --attack pgd:steps=20 --victim resnet32 --defense diffpure -n 16 ;;
    bf16)  # IRAD in bfloat16 autocast vs fp32 (accuracy only: this CPU has no fast bf16)
        run bf16 --victim resnet32 --attack autoattack --defense irad --defense irad:precision=bf16 -n 500 ;;
    table7)  # training task of the implicit representation (models from scripts/table7.sh, reduced scale)
        T7=${T7:-runs/table7}
        args=()
        for task in clean2clean super-resolution inpainting gaussian-denoising adversarial-denoising; do
            w="$T7/$task/implicit-$task.safetensors"
            [ -f "$w" ] || { echo "table7: no $w (train it with scripts/table7.sh); row skipped" >&2; continue; }
            args+=(--defense "disco:weights=$w" --defense "resample:reconstruction=implicit,sampler=si,d=1.5,weights=$w")
        done
        run table7 --victim resnet32 --attack autoattack -n 500 "${args[@]}" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
