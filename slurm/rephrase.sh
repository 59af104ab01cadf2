#!/usr/bin/env bash
# finephrase on a SLURM cluster: one array task per shard of the input, each with its own model server.
#
#   sbatch slurm/rephrase.sh                                   # the production recipe (pipelines/production.py)
#   sbatch --array=0-7 slurm/rephrase.sh pipelines/my_recipe.py [ARGS]       # a pipeline definition
#   sbatch --array=0-3 slurm/rephrase.sh rephrase INPUT... --prompt faq --output DIR [FLAGS]   # the plain CLI
#
# Each array task runs task $SLURM_ARRAY_TASK_ID of the run (pipelines read it with finephrase.run.slurm_task();
# the CLI form gets --rank). Resubmitting the same command after a partial run resumes it: finished tasks
# exit at once, interrupted ones continue after their last committed chunk.
#
# Site settings without editing this file: sbatch's own flags or environment (-p/SBATCH_PARTITION,
# -A/SBATCH_ACCOUNT, --qos/SBATCH_QOS, --time, --gpus-per-node ...), and
#   FINEPHRASE_VENV   the virtual environment to activate (default: .venv of the submit directory)
#   FINEPHRASE_PROMPTS_DIR  templates that add to / override the built-in library (default: prompts/ of the
#                     submit directory, when it has one)
#   FINEPHRASE_TMP    per-task scratch for caches (default: $TMPDIR or /tmp)
#   HF_HOME           Hugging Face cache (models, datasets)
#
# Preemption / time limit: SLURM sends SIGUSR1 300 s ahead; the task drains (finishes the requests in flight,
# commits complete chunks) and requeues itself. Logs: slurm-logs/<job>_<task>.out, appended across attempts.
#SBATCH --job-name=finephrase
#SBATCH --array=0-99
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=12
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=slurm-logs/%A_%a.out
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

RANK=${SLURM_ARRAY_TASK_ID:-0}
JOB=${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}
ATTEMPT=${SLURM_RESTART_COUNT:-0}
SCRATCH=${FINEPHRASE_TMP:-${TMPDIR:-/tmp}}/finephrase-${JOB}-${RANK}
mkdir -p "$SCRATCH"
# per-task caches: concurrent vLLM servers must not share compile caches
export VLLM_CACHE_ROOT=$SCRATCH/vllm TORCHINDUCTOR_CACHE_DIR=$SCRATCH/inductor TRITON_CACHE_DIR=$SCRATCH/triton
export FINEPHRASE_PROGRESS_INTERVAL=${FINEPHRASE_PROGRESS_INTERVAL:-60}
echo "[finephrase] job ${JOB} task ${RANK} attempt ${ATTEMPT} on $(hostname) at $(date -u +%FT%TZ)"

if [ $# -eq 0 ]; then
  set -- pipelines/production.py
fi
if [ "$1" = rephrase ]; then
  shift
  cmd=(finephrase rephrase "$@" --rank "$RANK")
elif [ -f "$1" ]; then
  cmd=(python "$@")
else
  echo "finephrase: '$1' is neither 'rephrase' nor a pipeline file" >&2
  exit 2
fi

# SIGUSR1 (the warning before the time limit, sent to this script only): the task drains, then we requeue it.
# SIGTERM (scancel, preemption) reaches every process of the job, finephrase included, which drains on its own;
# no requeue from here: a cancelled job stays cancelled, a preempted one is requeued by SLURM itself.
warned=0
child=
on_usr1() {
  warned=1
  echo "[finephrase] SIGUSR1 received: draining task ${RANK} before the time limit"
  [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null
}
trap on_usr1 USR1
trap 'echo "[finephrase] SIGTERM received: task ${RANK} stops"' TERM

"${cmd[@]}" &
child=$!
# `wait` returns early when a trapped signal arrives: wait until the child has really exited
while true; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done

if [ "$warned" -eq 1 ] && [ "$rc" -ne 0 ]; then
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    target=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
    echo "[finephrase] task ${RANK} drained (exit ${rc}): requeueing ${target:-$SLURM_JOB_ID}"
    scontrol requeue "${target:-$SLURM_JOB_ID}"
  fi
fi
echo "[finephrase] task ${RANK} exit ${rc} at $(date -u +%FT%TZ)"
exit "$rc"
