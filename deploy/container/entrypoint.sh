#!/bin/sh
# zmnode-entrypoint: starts a zmnode node in a container (deploy/k8s).
#
# On an empty volume it runs `zmailer init` once: node id = the pod name,
# the host name POD_NAME.ZMNODE_MAIL_DOMAIN, SMTP on 0.0.0.0, the admin
# listener, and (when the fleet CA is mounted) gossip on the peer port with
# the headless Service as seed-dns and a peer certificate issued from the
# CA. At every start it then copies the ConfigMap's files into etc/
# (filling in @HOSTNAME@ @NODE_ID@ @SMTP_PORT@ @SUBMISSION_PORT@
# @SMTPS_PORT@), installs the STARTTLS certificate and the etc secrets
# (scheduler.auth, smtp-auth.passwd), compiles the relations, and execs
# `zmailer start -f` (or the command given as arguments).
#
# Environment (defaults in brackets):
#   POD_NAME, POD_NAMESPACE    from the downward API [hostname, default]
#   ZMAILER_HOME               the node directory (the volume) [/var/lib/zmnode]
#   ZMNODE_MAIL_DOMAIN         [example.net]
#   ZMNODE_PEER_SERVICE        headless Service name [zmnode-peers]
#   ZMNODE_CLUSTER_DOMAIN      [cluster.local]
#   ZMNODE_GOSSIP_PORT         [7946]
#   ZMNODE_ADMIN_LISTEN        [0.0.0.0:8025]
#   ZMNODE_SMTP_PORT, ZMNODE_SUBMISSION_PORT, ZMNODE_SMTPS_PORT [25, 587, 465]
#   ZMNODE_CONFIG_DIR          ConfigMap mount [/etc/zmnode/config]
#   ZMNODE_SMTP_TLS_DIR        tls.crt, tls.key [/etc/zmnode/smtp-tls]
#   ZMNODE_PEER_CA_DIR         ca.crt, ca.key [/etc/zmnode/peer-ca]
#   ZMNODE_ETC_SECRETS_DIR     files copied into etc/ mode 0600 [/etc/zmnode/etc-secrets]
#   ZMNODE_SEED_DNS, ZMNODE_ADVERTISE  override the computed names
set -eu

log() { echo "zmnode-entrypoint: $*" >&2; }
die() { log "$*"; exit 78; }

home=${ZMAILER_HOME:-/var/lib/zmnode}
pod=${POD_NAME:-$(hostname)}
ns=${POD_NAMESPACE:-default}
domain=${ZMNODE_MAIL_DOMAIN:-example.net}
peers=${ZMNODE_PEER_SERVICE:-zmnode-peers}
cluster_domain=${ZMNODE_CLUSTER_DOMAIN:-cluster.local}
gossip_port=${ZMNODE_GOSSIP_PORT:-7946}
admin_listen=${ZMNODE_ADMIN_LISTEN:-0.0.0.0:8025}
smtp_port=${ZMNODE_SMTP_PORT:-25}
submission_port=${ZMNODE_SUBMISSION_PORT:-587}
smtps_port=${ZMNODE_SMTPS_PORT:-465}
config_dir=${ZMNODE_CONFIG_DIR:-/etc/zmnode/config}
smtp_tls_dir=${ZMNODE_SMTP_TLS_DIR:-/etc/zmnode/smtp-tls}
peer_ca_dir=${ZMNODE_PEER_CA_DIR:-/etc/zmnode/peer-ca}
etc_secrets_dir=${ZMNODE_ETC_SECRETS_DIR:-/etc/zmnode/etc-secrets}
seed_dns=${ZMNODE_SEED_DNS:-$peers.$ns.svc.$cluster_domain}
advertise=${ZMNODE_ADVERTISE:-$pod.$peers.$ns.svc.$cluster_domain:$gossip_port}
hostname_fqdn=$pod.$domain
marker=$home/.zmnode-initialized
umask 027

bindir=$(dirname "$(command -v zmailer)") || die "zmailer is not on PATH"
zmailer() { "$bindir/zmailer" -C "$home" "$@"; }

[ -d "$home" ] || die "$home (the node volume) does not exist"
[ -w "$home" ] || die "$home is not writable by uid $(id -u) (fsGroup?)"

if [ -f "$marker" ]; then
  # The volume belongs to one node id for life: queue ids carry it.
  have=$(sed -n 's/^node-id[[:space:]]\{1,\}\([^[:space:]#]*\).*/\1/p' \
         "$home/etc/cluster.conf" | head -n 1)
  if [ "$have" != "$pod" ]; then
    die "$home holds node '$have', not '$pod': refusing to start it under another name"
  fi
else
  # First start (or an init that was interrupted): init keeps spool/,
  # mail/ and log/ of a non-empty folder with --force (lost+found).
  fleet=""
  if [ -f "$peer_ca_dir/ca.crt" ] && [ -f "$peer_ca_dir/ca.key" ]; then
    fleet=yes
  else
    log "no fleet CA in $peer_ca_dir: this node runs alone (no gossip)"
  fi
  admin_flag=""
  if "$bindir/zmailer" init --help 2>/dev/null | grep -q -- '--admin-listen'; then
    admin_flag=yes
  fi
  ca_tmp=""
  if [ -n "$fleet" ]; then
    ca_tmp=$(mktemp -d "${TMPDIR:-/tmp}/zmnode-ca.XXXXXX")
    chmod 0700 "$ca_tmp"
    cp "$peer_ca_dir/ca.crt" "$ca_tmp/ca-cert.pem"
    (umask 077 && cp "$peer_ca_dir/ca.key" "$ca_tmp/ca-key.pem")
  fi
  rc=0
  "$bindir/zmailer" init "$home" --force --node-id "$pod" \
      --hostname "$hostname_fqdn" --smtp-address 0.0.0.0 \
      --smtp-port "$smtp_port" \
      ${admin_flag:+--admin-listen "$admin_listen"} \
      ${fleet:+--gossip-listen "0.0.0.0:$gossip_port"} \
      ${fleet:+--advertise "$advertise"} \
      ${fleet:+--seed-dns "$seed_dns"} \
      ${fleet:+--cluster-ca "$ca_tmp"} >&2 || rc=$?
  # The CA key never stays on the node's volume.
  [ -n "$ca_tmp" ] && rm -rf "$ca_tmp"
  [ "$rc" -eq 0 ] || die "zmailer init failed (exit $rc)"
  if [ -z "$admin_flag" ]; then
    # This zmailer has no --admin-listen yet: write what it would.
    printf 'listen %s\n' "$admin_listen" > "$home/etc/admin.conf"
  fi
  echo "$pod" > "$marker"
  log "initialized node $pod in $home"
fi

# Configuration from the ConfigMap, refreshed at every start.
if [ -d "$config_dir" ]; then
  for f in "$config_dir"/*; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    sed -e "s/@HOSTNAME@/$hostname_fqdn/g" -e "s/@NODE_ID@/$pod/g" \
        -e "s/@SMTP_PORT@/$smtp_port/g" \
        -e "s/@SUBMISSION_PORT@/$submission_port/g" \
        -e "s/@SMTPS_PORT@/$smtps_port/g" "$f" > "$home/etc/.$name.new"
    chmod 0644 "$home/etc/.$name.new"
    mv "$home/etc/.$name.new" "$home/etc/$name"
  done
fi
# Secrets: the STARTTLS certificate and credentials files.
if [ -f "$smtp_tls_dir/tls.crt" ] && [ -f "$smtp_tls_dir/tls.key" ]; then
  install -m 0644 "$smtp_tls_dir/tls.crt" "$home/etc/tls/smtpserver-cert.pem"
  install -m 0600 "$smtp_tls_dir/tls.key" "$home/etc/tls/smtpserver-key.pem"
fi
if [ -d "$etc_secrets_dir" ]; then
  for f in "$etc_secrets_dir"/*; do
    [ -f "$f" ] || continue
    install -m 0600 "$f" "$home/etc/$(basename "$f")"
  done
fi
zmailer newdb >&2 || die "zmailer newdb failed"

if [ $# -gt 0 ]; then
  exec "$@"
fi
exec "$bindir/zmailer" -C "$home" start -f
