#!/usr/bin/env bash
# start.sh - a small SLURM cluster on one machine, for development and CI on Debian 12 (bookworm).
#
# Installs Debian's SLURM (munge, slurmctld, slurmd, slurmdbd with a private MariaDB so that
# sacct works as on real sites) and runs every daemon by hand (no systemd) on loopback.
# The cluster has SLURM_DEV_NODES compute nodes, each its own slurmd on this host (Debian
# builds SLURM with multiple-slurmd support), each with SLURM_DEV_CPUS CPUs and
# SLURM_DEV_GPUS GPUs (a generic resource backed by placeholder files, no hardware), so
# that multi-node jobs and --gres=gpu:N requests are scheduled as on a GPU cluster.
# Run as root. Idempotent: a second run reuses the daemons this script recorded and starts
# only what is missing (so it also restarts a stopped slurmctld). Stop with stop.sh.
#
# Settings (environment):
#   SLURM_DEV_BASE=/var/lib/disaggbench-slurm   state, spool, logs, pid records, MariaDB data
#   SLURM_DEV_ETC=$SLURM_DEV_BASE/etc           slurm.conf and slurmdbd.conf
#                                               clients: export SLURM_CONF=$SLURM_DEV_ETC/slurm.conf
#   SLURM_DEV_NODES=4        compute nodes (slurmd daemons), named node1, node2, ...
#   SLURM_DEV_CPUS=16        CPUs (job slots) each node advertises, whatever the real count;
#                            empty = the real hardware
#   SLURM_DEV_GPUS=4         GPUs each node advertises (Gres=gpu:N); 0 = no GRES
#   SLURM_DEV_CLUSTER=disaggbench   SLURM_DEV_PARTITION=debug
#   SLURM_DEV_INSTALL=1      0 = never run apt-get (fail when packages are missing)
#   SLURM_DEV_FRESH=0        1 = wipe job state and accounting first (cluster must be stopped)
#   SLURM_DEV_SMOKE=1        0 = skip the final sbatch + sacct check
#   SLURM_DEV_TIMEOUT=60     seconds to wait for each daemon
#   SLURM_DEV_CTLD_PORT=6817 SLURM_DEV_DBD_PORT=6819
#   SLURM_DEV_SLURMD_PORT=6821  node i listens on this port + i - 1
#   SLURM_DEV_ACCOUNTS="quickstart benchmark llm_perf quota"   accounts created in slurmdbd
#                            (limits are enforced: a job's account must be one of these)
#   SLURM_DEV_USERS=""       users given every account, besides root and $SUDO_USER
set -euo pipefail

BASE=${SLURM_DEV_BASE:-/var/lib/disaggbench-slurm}
ETC=${SLURM_DEV_ETC:-$BASE/etc}
NODES=${SLURM_DEV_NODES:-4}
CPUS=${SLURM_DEV_CPUS-16}
GPUS=${SLURM_DEV_GPUS:-4}
CLUSTER=${SLURM_DEV_CLUSTER:-disaggbench}
PARTITION=${SLURM_DEV_PARTITION:-debug}
DO_INSTALL=${SLURM_DEV_INSTALL:-1}
FRESH=${SLURM_DEV_FRESH:-0}
SMOKE=${SLURM_DEV_SMOKE:-1}
TIMEOUT=${SLURM_DEV_TIMEOUT:-60}
CTLD_PORT=${SLURM_DEV_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_DEV_SLURMD_PORT:-6821}
DBD_PORT=${SLURM_DEV_DBD_PORT:-6819}
ACCOUNTS=${SLURM_DEV_ACCOUNTS-quickstart benchmark llm_perf quota}
USERS=${SLURM_DEV_USERS-}

PIDS=$BASE/pids   # one "<pid> <starttime> <exe>" record per daemon this script started
RUN=$BASE/run
LOG=$BASE/log
DB=$BASE/mysql
DB_SOCK=$DB/mysqld.sock
MARKER="# written by disaggbench deploy/slurm-dev/start.sh"
# Without a slurm.conf every SLURM client first tries a DNS SRV lookup: always set it.
export SLURM_CONF=$ETC/slurm.conf
export DEBIAN_FRONTEND=noninteractive

say() { printf '[slurm-dev] %s\n' "$*"; }
die() { printf '[slurm-dev] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "must run as root"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "SLURM_DEV_NODES=$NODES: want a whole number >= 1"
[[ $GPUS =~ ^[0-9]+$ ]] || die "SLURM_DEV_GPUS=$GPUS: want a whole number >= 0"
[[ -z $CPUS || $CPUS =~ ^[1-9][0-9]*$ ]] || die "SLURM_DEV_CPUS=$CPUS: want a whole number >= 1 or empty"
NODE_NAMES=()
for i in $(seq 1 "$NODES"); do NODE_NAMES+=("node$i"); done
NODE_LIST=node1
[ "$NODES" -gt 1 ] && NODE_LIST="node[1-$NODES]"

# --------------------------------------------------------------- process records
alive() { # pid: running and not a zombie
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
starttime() { sed -e 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f20; }
ours() { # name: true when the recorded pid is still the process this script started
	local f=$PIDS/$1.pid pid st exe
	[ -f "$f" ] || return 1
	read -r pid st exe <"$f" || return 1
	alive "$pid" && [ "$(starttime "$pid")" = "$st" ] && [ "$(readlink "/proc/$pid/exe")" = "$exe" ]
}
our_pid() { cut -d' ' -f1 "$PIDS/$1.pid"; }
any_slurmd() { # true when a slurmd this script started runs (one record per node: slurmd-<node>)
	local f
	for f in "$PIDS"/slurmd.pid "$PIDS"/slurmd-*.pid; do
		[ -f "$f" ] || continue
		f=${f##*/}
		ours "${f%.pid}" && return 0
	done
	return 1
}

start_daemon() { # name expected-exe command...: run in its own session, record the pid
	local name=$1 want pid
	want=$(readlink -f "$2")
	shift 2
	setsid "$@" >>"$LOG/$name.stdout" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 1 50); do # wait for env/setpriv to exec the daemon itself
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$want" ] && break
		alive "$pid" || break
		sleep 0.1
	done
	if ! alive "$pid"; then
		tail -n 30 "$LOG/$name.stdout" >&2 || true
		die "$name exited right after start (see $LOG/$name.stdout)"
	fi
	echo "$pid $(starttime "$pid") $want" >"$PIDS/$name.pid"
	say "started $name (pid $pid)"
}

wait_for() { # what command...: poll until the command succeeds
	local what=$1 t0
	shift
	t0=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		if [ $(($(date +%s) - t0)) -ge "$TIMEOUT" ]; then
			tail -n 25 "$LOG"/*.log "$LOG"/*.stdout 2>/dev/null >&2 || true
			die "$what not ready after ${TIMEOUT}s"
		fi
		sleep 0.2
	done
}

port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
check_port_free() { # name port
	ours "$1" && return 0
	port_busy "$ADDR" "$2" && die "port $2 on $ADDR is in use by something this script did not start"
	return 0
}

T0=$(now)

# --------------------------------------------------------------- 1. packages
PKGS=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server)
MISSING=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$p")
done
T_INSTALL=0
if [ ${#MISSING[@]} -gt 0 ]; then
	[ "$DO_INSTALL" = 1 ] || die "missing packages: ${MISSING[*]} (SLURM_DEV_INSTALL=0)"
	say "installing ${MISSING[*]}"
	t=$(now)
	# Keep the packages' maintainer scripts from starting services with packaged defaults.
	OWN_POLICY=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		OWN_POLICY=1
		trap '[ "$OWN_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
	if [ "$OWN_POLICY" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		OWN_POLICY=0
	fi
	T_INSTALL=$(secs "$t" "$(now)")
fi
getent passwd slurm >/dev/null || die "user slurm missing (it comes with the slurm packages)"
VERSION=$(dpkg-query -W -f='${Version}' slurmctld)

# --------------------------------------------------------------- 2. names, addresses, folders
T_DAEMONS=$(now)
HOST=$(hostname -s)
# With NoInAddrAny the daemons bind to what the host name resolves to instead of 0.0.0.0;
# use it only when that is a loopback address.
BIND_IP=$(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR==1{print $1}')
if [[ $BIND_IP == 127.* ]]; then
	ADDR=$BIND_IP
	COMM="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
	DBD_COMM="CommunicationParameters=NoInAddrAny"
else
	ADDR=127.0.0.1
	COMM=""
	DBD_COMM=""
	say "WARNING: $(hostname) resolves to '${BIND_IP:-nothing}', not loopback: daemons listen on all interfaces"
fi

if [ "$FRESH" = 1 ]; then
	for d in slurmctld slurmdbd mariadbd; do
		ours "$d" && die "SLURM_DEV_FRESH=1 but $d is running: run stop.sh first"
	done
	any_slurmd && die "SLURM_DEV_FRESH=1 but a slurmd is running: run stop.sh first"
	say "wiping job state and accounting ($BASE/state $BASE/spool $DB)"
	rm -rf "$BASE/state" "$BASE/spool" "$DB"
fi

mkdir -p "$BASE" "$PIDS" "$RUN" "$LOG" "$BASE/state" "$BASE/spool" "$ETC"
chmod 755 "$BASE" "$ETC"
chmod 700 "$PIDS"
chown slurm:slurm "$RUN" "$LOG" "$BASE/state"
for n in "${NODE_NAMES[@]}"; do mkdir -p "$BASE/spool/$n"; done
chmod 755 "$RUN" "$LOG"

# --------------------------------------------------------------- 3. munge
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 755 /run/munge
chmod 700 /var/log/munge /etc/munge
chmod 711 /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
	if command -v mungekey >/dev/null; then
		mungekey --create --keyfile=/etc/munge/munge.key
	else
		dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
	fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }
if ours munged; then
	say "munged already running (pid $(our_pid munged))"
elif munge_ok 2>/dev/null; then
	say "using a munged this script did not start"
else
	start_daemon munged /usr/sbin/munged \
		setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground --origin=127.0.0.1
	wait_for munged munge_ok
fi

# --------------------------------------------------------------- 4. private MariaDB
mkdir -p "$DB"
chown mysql:mysql "$DB"
chmod 755 "$DB"
if [ ! -d "$DB/data/mysql" ]; then
	say "creating the accounting database in $DB/data"
	mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" \
		--auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
		{
			tail -n 20 "$LOG/mariadb-install.log" >&2
			die "mariadb-install-db failed"
		}
fi
db_ok() { mariadb-admin --no-defaults --socket="$DB_SOCK" -uroot ping; }
if ours mariadbd; then
	say "mariadbd already running (pid $(our_pid mariadbd))"
else
	db_ok >/dev/null 2>&1 && die "something this script did not start serves $DB_SOCK"
	# Unix socket only, no TCP port; the sizes silence slurmdbd's "not recommended" errors.
	start_daemon mariadbd /usr/sbin/mariadbd \
		/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB/data" \
		--socket="$DB_SOCK" --pid-file="$DB/mysqld.pid" --skip-networking \
		--innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900
fi
wait_for mariadbd db_ok
if [ ! -s "$BASE/dbpass" ]; then
	(
		umask 077
		head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$BASE/dbpass"
	)
fi
DBPASS=$(cat "$BASE/dbpass")
mariadb --no-defaults --socket="$DB_SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# --------------------------------------------------------------- 5. slurm.conf, slurmdbd.conf
# The node as slurmd sees it; RealMemory lowered 5% so the node never drains as "Low RealMemory".
HW=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]* //')
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
MEM=$((MEM * 95 / 100))
HW=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$MEM/" <<<"$HW")
OVERRIDES=""
GRES_TYPES=""
GRES=""
if [ "$GPUS" -gt 0 ]; then
	# sacct's AllocTRES then shows gres/gpu too
	GRES_TYPES="GresTypes=gpu
AccountingStorageTRES=gres/gpu"
	GRES="Gres=gpu:$GPUS"
fi
if [ -n "$CPUS" ]; then
	# More slots than cores: jobs share cores, which is what a test cluster wants.
	HW="CPUs=$CPUS RealMemory=$MEM"
	OVERRIDES="SlurmdParameters=config_overrides"
fi

CONF=$(
	cat <<EOF
$MARKER (base $BASE)
ClusterName=$CLUSTER
SlurmctldHost=$HOST($ADDR)
SlurmctldPort=$CTLD_PORT
$COMM
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: works in containers without a delegated cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# start a queued job about 1 s after a slot frees (the default waits 3 s); sched_interval
# and bf_interval bound how long a job the event-driven passes missed waits
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
$OVERRIDES
$GRES_TYPES
MailProg=/bin/true
KillWait=5
OverTimeLimit=0
MinJobAge=300
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$ADDR
AccountingStoragePort=$DBD_PORT
# as on real sites: a job needs an association (user and account), and QOS and
# association limits (MaxSubmitJobsPerUser, MaxJobs, ...) refuse or hold jobs
AccountingStorageEnforce=associations,limits,qos
JobCompType=jobcomp/none
# every node is a slurmd on this host, told apart by its port
$(for i in $(seq 1 "$NODES"); do
		echo "NodeName=node$i NodeHostname=$HOST NodeAddr=$ADDR Port=$((SLURMD_PORT + i - 1)) $HW $GRES State=UNKNOWN"
	done)
PartitionName=$PARTITION Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
EOF
)
# Placeholder GPUs: slurmd ignores a GPU without a File, and wants a character device
# there, so each "GPU" is a symlink to /dev/null, shared by every node; nothing opens it
# (task/none binds no devices) and jobs get CUDA_VISIBLE_DEVICES as on a real node.
GRES_CONF="$MARKER
AutoDetect=off"
if [ "$GPUS" -gt 0 ]; then
	mkdir -p "$BASE/gpus"
	for i in $(seq 0 $((GPUS - 1))); do
		[ "$(readlink "$BASE/gpus/gpu$i" 2>/dev/null)" = /dev/null ] || ln -sfn /dev/null "$BASE/gpus/gpu$i"
	done
	files=$BASE/gpus/gpu0
	[ "$GPUS" -gt 1 ] && files="$BASE/gpus/gpu[0-$((GPUS - 1))]"
	GRES_CONF+="
NodeName=$NODE_LIST Name=gpu File=$files"
fi
if [ -f "$ETC/slurm.conf" ] && ! grep -q "^$MARKER" "$ETC/slurm.conf"; then
	die "$ETC/slurm.conf was not written by this script; set SLURM_DEV_ETC to another folder"
fi
node_lines() { grep -E '^(NodeName|PartitionName)=' "${1:--}"; }
write_conf() {
	printf '%s\n' "$CONF" >"$ETC/slurm.conf"
	printf '%s\n' "$GRES_CONF" >"$ETC/gres.conf"
	chmod 644 "$ETC/slurm.conf" "$ETC/gres.conf"
}
RECONFIGURE=0
if [ "$(cat "$ETC/slurm.conf" 2>/dev/null)" != "$CONF" ] || [ "$(cat "$ETC/gres.conf" 2>/dev/null)" != "$GRES_CONF" ]; then
	if ! ours slurmctld && ! any_slurmd; then
		write_conf
	elif [ "$(cat "$ETC/gres.conf" 2>/dev/null)" = "$GRES_CONF" ] &&
		[ "$(node_lines "$ETC/slurm.conf")" = "$(node_lines <<<"$CONF")" ]; then
		# Same nodes, other settings: written once the accounts exist, then applied
		# with `scontrol reconfigure`, which keeps jobs and daemons.
		RECONFIGURE=1
	else
		say "WARNING: the nodes in slurm.conf or gres.conf would change but the daemons run: keeping the old ones (stop.sh, then start.sh)"
	fi
fi
# slurmdbd refuses a config not owned by SlurmUser with mode 600.
(
	umask 077
	cat >"$ETC/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
$DBD_COMM
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
# localhost = the unix socket named by MYSQL_UNIX_PORT
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
)
chown slurm:slurm "$ETC/slurmdbd.conf"
chmod 600 "$ETC/slurmdbd.conf"

# --------------------------------------------------------------- 6. slurm daemons
if ours slurmdbd; then
	say "slurmdbd already running (pid $(our_pid slurmdbd))"
else
	check_port_free slurmdbd "$DBD_PORT"
	start_daemon slurmdbd /usr/sbin/slurmdbd \
		env MYSQL_UNIX_PORT="$DB_SOCK" SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmdbd -D
fi
wait_for slurmdbd sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
	sacctmgr -i add cluster "$CLUSTER" >/dev/null
	say "registered cluster $CLUSTER"
fi
# Accounts and associations, before slurmctld enforces them. The quota account's jobs run
# under the QOS "quota" by default: tests set limits on it (sacctmgr modify qos quota set
# MaxSubmitJobsPerUser=N) without touching anyone else's jobs, and lift them after.
sacctmgr -n -P list qos format=name | grep -qx quota || sacctmgr -i add qos quota >/dev/null
ACCT_USERS=(root)
[ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ACCT_USERS+=("$SUDO_USER")
for u in $USERS; do ACCT_USERS+=("$u"); done
for a in $ACCOUNTS; do
	[[ $a =~ ^[a-z0-9_][a-z0-9_.-]*$ ]] || die "SLURM_DEV_ACCOUNTS: bad account name '$a'"
	if ! sacctmgr -n -P list account name="$a" format=account | grep -qx "$a"; then
		qos=()
		[ "$a" = quota ] && qos=(qos=normal,quota defaultqos=quota)
		sacctmgr -i add account "$a" cluster="$CLUSTER" "${qos[@]}" >/dev/null
		say "added account $a"
	fi
	for u in "${ACCT_USERS[@]}"; do
		getent passwd "$u" >/dev/null || die "SLURM_DEV_USERS: no user '$u'"
		if ! sacctmgr -n -P list assoc cluster="$CLUSTER" account="$a" user="$u" format=user | grep -qx "$u"; then
			sacctmgr -i add user "$u" account="$a" cluster="$CLUSTER" >/dev/null
		fi
	done
done

if [ "$RECONFIGURE" = 1 ]; then
	# Some settings (AccountingStorageEnforce) take effect only when slurmctld starts; it
	# recovers its jobs from the saved state, and running jobs go on.
	write_conf
	if ours slurmctld; then
		pid=$(our_pid slurmctld)
		kill -TERM "$pid"
		for _ in $(seq 1 $((TIMEOUT * 5))); do
			alive "$pid" || break
			sleep 0.2
		done
		alive "$pid" && die "slurmctld (pid $pid) did not stop"
		say "stopped slurmctld (pid $pid) for the new slurm.conf"
	fi
fi
if ours slurmctld; then
	say "slurmctld already running (pid $(our_pid slurmctld))"
else
	check_port_free slurmctld "$CTLD_PORT"
	start_daemon slurmctld /usr/sbin/slurmctld /usr/sbin/slurmctld -D
fi
ctld_up() { scontrol ping | grep -q 'is UP'; }
wait_for slurmctld ctld_up
if [ "$RECONFIGURE" = 1 ]; then
	scontrol reconfigure || die "scontrol reconfigure failed (see $LOG/slurmctld.log)"
	say "slurm.conf changed (same nodes): slurmctld restarted, slurmd reconfigured"
fi

# The nodes this slurm.conf names (it may be an older one, kept because daemons run).
mapfile -t CONF_NODES < <(sed -n 's/^NodeName=\([^ ]*\) .*Port=\([0-9]*\).*/\1 \2/p' "$ETC/slurm.conf")
[ ${#CONF_NODES[@]} -gt 0 ] || die "no NodeName line with a Port in $ETC/slurm.conf (an older start.sh wrote it: stop.sh, then start.sh)"
for np in "${CONF_NODES[@]}"; do
	read -r n port <<<"$np"
	if ours "slurmd-$n"; then
		say "slurmd for $n already running (pid $(our_pid "slurmd-$n"))"
	else
		check_port_free "slurmd-$n" "$port"
		start_daemon "slurmd-$n" /usr/sbin/slurmd /usr/sbin/slurmd -D -N "$n"
	fi
done
node_ready() { # node
	case "$(sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n1)" in
	idle | mixed | allocated | completing) return 0 ;;
	*drain* | down*)
		scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true
		return 1
		;;
	*) return 1 ;;
	esac
}
for np in "${CONF_NODES[@]}"; do
	n=${np%% *}
	wait_for "node $n" node_ready "$n"
done
wait_for sacct sacct -n -X -S now-1minutes
T_DAEMONS=$(secs "$T_DAEMONS" "$(now)")

# --------------------------------------------------------------- 7. smoke job
if [ "$SMOKE" = 1 ]; then
	t=$(now)
	# Two nodes, and every GPU of each when the cluster has GPUs and runs nothing else
	# (a busy cluster still has CPUs for a job without GPUs): proves nodes and GRES.
	smoke_args=(-N "$((${#CONF_NODES[@]} > 1 ? 2 : 1))")
	gpus=$(sed -n 's/^NodeName=.* Gres=gpu:\([0-9]*\).*/\1/p' "$ETC/slurm.conf" | head -n1)
	if [ -n "$gpus" ] && [ -z "$(squeue -h -o %i 2>/dev/null | head -n1)" ]; then
		smoke_args+=("--gres=gpu:$gpus")
	fi
	jid=$(sbatch --parsable -J slurm-dev-smoke -o /dev/null "${smoke_args[@]}" --wrap true) || die "sbatch failed"
	jid=${jid%%;*}
	smoke_state() { sacct -n -X -P -j "$jid" -o State 2>/dev/null | head -n1; }
	smoke_done() {
		case "$(smoke_state)" in
		COMPLETED | FAILED | CANCELLED* | TIMEOUT | NODE_FAIL | OUT_OF_ME* | BOOT_FAIL | DEADLINE) return 0 ;;
		esac
		return 1
	}
	wait_for "smoke job $jid in sacct" smoke_done
	st=$(smoke_state)
	[ "$st" = COMPLETED ] || die "smoke job $jid ended $st (see $LOG/slurmd-*.log)"
	say "smoke job $jid (${smoke_args[*]}) COMPLETED in sacct after $(secs "$t" "$(now)")s"
fi

echo "export SLURM_CONF=$SLURM_CONF" >"$BASE/env"
chmod 644 "$BASE/env"
say "ready: slurm $VERSION, cluster $CLUSTER, partition $PARTITION: ${#CONF_NODES[@]} nodes on $HOST ($ADDR):"
sinfo -h -N -o '[slurm-dev]   %N %T, %c CPUs, GRES %G' 2>/dev/null || true
say "took: install ${T_INSTALL}s, daemons ${T_DAEMONS}s, total $(secs "$T0" "$(now)")s; logs in $LOG"
say "clients need: export SLURM_CONF=$SLURM_CONF"
