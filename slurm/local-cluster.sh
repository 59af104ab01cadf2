#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for tests and for trying slurm/rephrase.sh without a real cluster.
#
#   slurm/local-cluster.sh up      install slurm-wlm + munge from apt if missing (needs root), start munged,
#                                  slurmctld and slurmd; prints `export SLURM_CONF=...` to use it
#   slurm/local-cluster.sh down    stop them and remove the state folder
#   slurm/local-cluster.sh env     print the export line again
#
# State, spool, logs and the config live in $FINEPHRASE_SLURM_DIR (default /tmp/finephrase-slurm).
# Partition `debug`, one node named after `hostname -s` with all CPUs; process tracking without cgroups
# (nothing is left behind in /sys/fs/cgroup).
set -euo pipefail

DIR=${FINEPHRASE_SLURM_DIR:-/tmp/finephrase-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

die() { echo "local-cluster: $*" >&2; exit 1; }

install_if_missing() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "slurm-wlm is not installed and installing it needs root (apt-get install slurmctld slurmd slurm-client munge)"
  echo "local-cluster: installing slurm-wlm and munge from apt ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  mkdir -p "$DIR"/{state,spool,log}
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  cat > "$CONF" <<EOF
ClusterName=finephrase-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerParameters=defer_batch
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${FINEPHRASE_SLURMCTLD_PORT:-6817}
SlurmdPort=${FINEPHRASE_SLURMD_PORT:-6818}
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  # munged runs as user munge and cannot write its pid file into $DIR (root's): find it by its command line
  if pgrep -f -- "--pid-file=$DIR/munged.pid" >/dev/null; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge: /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then mungekey -c -f >/dev/null 2>&1 || /usr/sbin/mungekey -c -f; fi
  chown munge: /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --pid-file="$DIR/munged.pid" --force
}

up() {
  install_if_missing
  if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    echo "local-cluster: already up" >&2
  else
    write_conf
    start_munge
    SLURM_CONF=$CONF slurmctld -c -i
    SLURM_CONF=$CONF slurmd
  fi
  for _ in $(seq 1 100); do
    if SLURM_CONF=$CONF sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$CONF"
      return
    fi
    sleep 0.2
  done
  tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  die "the node did not come up (logs above)"
}

down() {
  if [ -f "$CONF" ]; then
    SLURM_CONF=$CONF scontrol shutdown >/dev/null 2>&1 || true
  fi
  for pidfile in "$DIR/slurmctld.pid" "$DIR/slurmd.pid"; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  pkill -f -- "--pid-file=$DIR/munged.pid" 2>/dev/null || true
  rm -rf "$DIR"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
