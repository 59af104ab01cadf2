#!/usr/bin/env bash
# A stage after rephrasing (verify, dedup, mix, card, publish, or a pipeline definition) as one CPU job,
# usually chained after the rephrasing array so that it starts only once every task of it has succeeded:
#
#   JOB=$(sbatch --parsable --array=0-99 slurm/rephrase.sh rephrase INPUT --prompt faq --output out/run)
#   DEDUP=$(sbatch --parsable --dependency=afterok:$JOB slurm/stage.sh dedup out/run --output out/run-dedup)
#   COMPACT=$(sbatch --parsable --array=0-15 --dependency=afterok:$DEDUP slurm/stage.sh compact out/run-dedup \
#             --output out/run-final)                # an array: each task writes its own shards
#   sbatch --dependency=afterok:$COMPACT slurm/stage.sh publish out/run-final --repo ORG/NAME --private
#   sbatch --dependency=afterok:$JOB slurm/stage.sh pipelines/dedup.py            # a pipeline definition
#
# ARGS are `finephrase` subcommand arguments, or a Python file and its arguments. afterok on an array job waits
# for all its tasks, requeued ones included; if any task fails for good, the dependency can never be met and
# this job is cancelled (--kill-on-invalid-dep) instead of waiting in the queue forever. Every finephrase stage
# refuses a run that is not finished (`finephrase verify` fails) with one line, before doing anything.
#
# Site settings as for slurm/rephrase.sh: sbatch flags or SBATCH_* variables (partition, account, qos, time),
# FINEPHRASE_VENV (default .venv of the submit directory), HF_HOME; HF_TOKEN for publish (never printed).
# Logs: slurm-logs/<job>_stage.out.
#SBATCH --job-name=finephrase-stage
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --open-mode=append
#SBATCH --output=slurm-logs/%j_stage.out
set -uo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"
# a project folder's own templates (`finephrase init`) add to / override the built-in library
if [ -z "${FINEPHRASE_PROMPTS_DIR:-}" ] && [ -d prompts ]; then
  export FINEPHRASE_PROMPTS_DIR=$PWD/prompts
fi
VENV=${FINEPHRASE_VENV:-.venv}
if [ -f "$VENV/bin/activate" ]; then
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
elif ! command -v finephrase >/dev/null; then
  echo "finephrase: no virtual environment at $VENV and no finephrase on PATH: set FINEPHRASE_VENV" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  echo "usage: sbatch [--dependency=afterok:JOB] slurm/stage.sh COMMAND [ARGS] | PIPELINE.py [ARGS]" >&2
  exit 2
fi
if [ -f "$1" ]; then
  cmd=(python "$@")
else
  cmd=(finephrase "$@")
fi
echo "[finephrase] stage job ${SLURM_JOB_ID:-local} on $(hostname) at $(date -u +%FT%TZ): ${cmd[*]}"
"${cmd[@]}"
rc=$?
echo "[finephrase] stage exit ${rc} at $(date -u +%FT%TZ)"
exit "$rc"
