# Shared by bench/peers/exim and bench/peers/opensmtpd (sourced, not run).
#
# Both programs have users and paths compiled in (Exim: the user
# Debian-exim; OpenSMTPD: the users opensmtpd and opensmtpq, the spool
# /var/spool/smtpd, the chroot /var/lib/opensmtpd/empty, the control socket
# /run/smtpd.sock). None of these is created on the host: each instance runs
# in a private mount namespace (`unshare --mount`) where copies of
# /etc/passwd and /etc/group with the extra users, and the instance's own
# folders over the compiled-in paths, are bind-mounted. The host's files are
# never written; the mounts vanish with the instance's last process.

die() { echo "$peer peer: $*" >&2; exit 64; }

# download_debs DEST PKG...: apt-get download, then dpkg -x each into DEST.
download_debs() {
  local dest=$1 tmp
  shift
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's sandbox user must be able to write here
  (cd "$tmp" && apt-get download "$@" >/dev/null 2>&1) ||
    die "apt-get download $* failed (run apt-get update?)"
  mkdir -p "$dest"
  local f
  for f in "$tmp"/*.deb; do dpkg -x "$f" "$dest"; done
  rm -rf "$tmp"
}

# ns_accounts DIR ENTRY...: DIR/ns/passwd and DIR/ns/group are the host's
# files plus one user and one group per ENTRY "name:uid" (gid = uid).
ns_accounts() {
  local dir=$1 e name id
  shift
  mkdir -p "$dir/ns"
  cp /etc/passwd "$dir/ns/passwd"
  cp /etc/group "$dir/ns/group"
  for e in "$@"; do
    name=${e%%:*}
    id=${e##*:}
    echo "$name:x:$id:$id:bench peer:/nonexistent:/usr/sbin/nologin" >>"$dir/ns/passwd"
    echo "$name:x:$id:" >>"$dir/ns/group"
  done
  chmod 644 "$dir/ns/passwd" "$dir/ns/group"
}

# ns_exec DIR "SRC:TARGET ..." CMD...: runs CMD (exec, same pid) in a new
# mount namespace with DIR/ns/{passwd,group} over /etc and each SRC
# bind-mounted over TARGET.
ns_exec() {
  local dir=$1 binds=$2
  shift 2
  # shellcheck disable=SC2016
  exec unshare --mount --propagation private -- /bin/sh -c '
    set -e
    dir=$1; binds=$2; shift 2
    mount --bind "$dir/ns/passwd" /etc/passwd
    mount --bind "$dir/ns/group" /etc/group
    for b in $binds; do mount --bind "${b%%:*}" "${b#*:}"; done
    exec "$@"' sh "$dir" "$binds" "$@"
}

# wait_port ADDR PORT: until something accepts on ADDR:PORT (10 s).
wait_port() {
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# stop_pid PID: TERM, up to 5 s, then KILL.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# wait_empty TIMEOUT DIR...: until no regular file is left below the DIRs
# (the queue is drained); non-zero after TIMEOUT seconds.
wait_empty() {
  local timeout=$1 t0
  shift
  t0=$(date +%s)
  while [ -n "$(find "$@" -type f -print -quit 2>/dev/null)" ]; do
    [ $(($(date +%s) - t0)) -lt "$timeout" ] || return 1
    sleep 0.1
  done
}
