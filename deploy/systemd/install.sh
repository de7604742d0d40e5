#!/bin/sh
# install.sh: makes this VM a zmnode node run by systemd.
#
#   deploy/systemd/install.sh [--prefix /usr/local] [--home /var/lib/zmnode]
#                             [-- ZMAILER-INIT-OPTIONS...]
#
# Needs root and an installed build (`cmake --install build --prefix
# PREFIX`). It creates the system user zmnode, runs `zmailer init` on the
# node directory as that user unless it already holds a node (options after
# `--` go to init: --node-id, --hostname, --gossip-listen, --seed-dns,
# --cluster-ca, --admin-listen...), installs zmnode.service (with PREFIX
# and HOME filled in) and the logrotate file, and enables the unit. It does
# not start it: check etc/ first, then `systemctl start zmnode`.
# DESTDIR (for packaging and tests) is prepended to every path it writes;
# with DESTDIR set it creates no user and calls neither zmailer nor systemctl.
set -eu
prefix=/usr/local
home=/var/lib/zmnode
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --home) home=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "install.sh: unknown option '$1'" >&2; exit 64 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
dest=${DESTDIR:-}
zmailer=$prefix/bin/zmailer
if [ -z "$dest" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root" >&2; exit 77
  fi
  if [ ! -x "$zmailer" ]; then
    echo "install.sh: $zmailer not found: cmake --install first" >&2; exit 69
  fi
  if ! getent passwd zmnode >/dev/null; then
    useradd --system --home-dir "$home" --no-create-home \
      --shell /usr/sbin/nologin --user-group zmnode
  fi
fi

install -d -m 0750 "$dest$home"
if [ -z "$dest" ]; then
  chown zmnode:zmnode "$home"
  if [ ! -d "$home/etc" ]; then
    # --force: the folder exists (we just made it), and may hold lost+found.
    runuser -u zmnode -- "$zmailer" init "$home" --force "$@"
  else
    echo "install.sh: $home already holds a node; init skipped"
  fi
fi

install -d "$dest/etc/systemd/system" "$dest/etc/logrotate.d"
sed -e "s#/usr/local/bin/zmailer#$zmailer#" \
    -e "s#/var/lib/zmnode#$home#g" \
    "$here/zmnode.service" > "$dest/etc/systemd/system/zmnode.service"
chmod 0644 "$dest/etc/systemd/system/zmnode.service"
sed -e "s#/var/lib/zmnode#$home#g" "$here/zmnode.logrotate" \
  > "$dest/etc/logrotate.d/zmnode"
chmod 0644 "$dest/etc/logrotate.d/zmnode"

if [ -z "$dest" ]; then
  systemctl daemon-reload
  systemctl enable zmnode.service
  echo "installed: systemctl start zmnode; journalctl -u zmnode -f"
fi
