#!/usr/bin/env bash
# stop.sh - stop the daemons that start.sh started, by the pids it recorded; never by name.
# A daemon start.sh merely reused (a system munged, say) has no record and is left alone.
# Job state, logs and the accounting database are kept: the next start.sh continues them.
#
#   stop.sh                 cancel queued and running jobs, then stop every recorded daemon
#   stop.sh slurmctld ...   stop only the named daemons and cancel nothing (start.sh starts
#                           them again): slurmd slurmctld slurmdbd mariadbd munged;
#                           slurmd means every node's slurmd, slurmd-node2 just one of them
#
# Settings (environment), matching start.sh:
#   SLURM_DEV_BASE=/var/lib/disaggbench-slurm   SLURM_DEV_ETC=$SLURM_DEV_BASE/etc
#   SLURM_DEV_CANCEL=1      0 = do not cancel jobs before a full stop
#   SLURM_DEV_PURGE=0       1 = delete SLURM_DEV_BASE after a full stop
set -uo pipefail

BASE=${SLURM_DEV_BASE:-/var/lib/disaggbench-slurm}
ETC=${SLURM_DEV_ETC:-$BASE/etc}
CANCEL=${SLURM_DEV_CANCEL:-1}
PURGE=${SLURM_DEV_PURGE:-0}
PIDS=$BASE/pids
ALL=(slurmd slurmctld slurmdbd mariadbd munged)
export SLURM_CONF=$ETC/slurm.conf

say() { printf '[slurm-dev] %s\n' "$*"; }
[ "$(id -u)" = 0 ] || {
	say "ERROR: must run as root" >&2
	exit 1
}

alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
starttime() { sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
ours() { # name: prints the pid when the recorded process is still the one start.sh started
	local f=$PIDS/$1.pid pid st exe
	[ -f "$f" ] || return 1
	read -r pid st exe <"$f" || return 1
	alive "$pid" && [ "$(starttime "$pid")" = "$st" ] && [ "$(readlink "/proc/$pid/exe")" = "$exe" ] &&
		echo "$pid"
}

FULL=1
NAMES=("${ALL[@]}")
if [ $# -gt 0 ]; then
	FULL=0
	NAMES=()
	for want in "${ALL[@]}"; do # keep the safe order: slurmd first, munged last
		for a in "$@"; do
			[ "$a" = "$want" ] && NAMES+=("$want")
			[ "$want" = slurmd ] && [[ $a == slurmd-* ]] && NAMES+=("$a")
		done
	done
	for a in "$@"; do
		case " ${ALL[*]} " in *" $a "*) ;; *)
			[[ $a =~ ^slurmd-[A-Za-z0-9_.-]+$ ]] && continue
			say "ERROR: unknown daemon $a (one of: ${ALL[*]}, or slurmd-NODE)" >&2
			exit 2
			;;
		esac
	done
fi
# "slurmd" stands for every node's slurmd: one record per node, slurmd-<node>.pid.
EXPANDED=()
for name in "${NAMES[@]}"; do
	if [ "$name" = slurmd ]; then
		for f in "$PIDS"/slurmd.pid "$PIDS"/slurmd-*.pid; do
			[ -f "$f" ] || continue
			f=${f##*/}
			EXPANDED+=("${f%.pid}")
		done
	else
		EXPANDED+=("$name")
	fi
done
NAMES=("${EXPANDED[@]}")

# Cancel jobs first so that no job outlives slurmd.
if [ "$FULL" = 1 ] && [ "$CANCEL" = 1 ] && ours slurmctld >/dev/null && [ -f "$SLURM_CONF" ]; then
	jobs=$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null | sort -u | tr '\n' ' ')
	if [ -n "${jobs// /}" ]; then
		say "cancelling jobs: $jobs"
		# shellcheck disable=SC2086
		scancel $jobs 2>/dev/null || true
		for _ in $(seq 1 75); do
			[ -z "$(squeue -h -t R,CG,S 2>/dev/null)" ] && break
			sleep 0.2
		done
	fi
fi

rc=0
for name in "${NAMES[@]}"; do
	f=$PIDS/$name.pid
	[ -f "$f" ] || continue
	if pid=$(ours "$name"); then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 150); do # up to 30 s
			alive "$pid" || break
			sleep 0.2
		done
		if alive "$pid"; then
			say "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
			for _ in $(seq 1 25); do
				alive "$pid" || break
				sleep 0.2
			done
		fi
		if alive "$pid"; then
			say "ERROR: $name (pid $pid) still running"
			rc=1
			continue
		fi
		say "stopped $name (pid $pid)"
	else
		say "$name: recorded pid $(cut -d' ' -f1 "$f") is gone or reused; nothing to stop"
	fi
	rm -f "$f"
done

if [ "$FULL" = 1 ] && [ "$PURGE" = 1 ] && [ $rc = 0 ]; then
	say "deleting $BASE"
	rm -rf "$BASE"
fi
exit $rc
