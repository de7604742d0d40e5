#!/bin/sh
# make-secrets.sh OVERLAY_DIR [MAIL_DOMAIN]
#
# Writes the files an overlay's secretGenerator reads into
# OVERLAY_DIR/secrets/ (kept out of git), each only if it is missing, so
# your own files are never replaced:
#   peer-ca.crt, peer-ca.key   the fleet's CA (P-256, 10 years): every pod
#                              issues its own peer certificate from it at
#                              its first start (zmailer init --cluster-ca)
#   smtp-tls.crt, smtp-tls.key a self-signed STARTTLS certificate for
#                              *.MAIL_DOMAIN; replace with a real one
#   scheduler.auth             the admin user (admind's HTTP Basic auth,
#                              mailq) with a random password
#   smtp-auth.passwd           (outbound-submission only) an example
#                              submission user with a random password
# The passwords are printed once.
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -f "$1/kustomization.yaml" ]; then
  echo "usage: make-secrets.sh OVERLAY_DIR [MAIL_DOMAIN]" >&2
  exit 64
fi
overlay=$1
domain=${2:-example.net}
out=$overlay/secrets
umask 077
mkdir -p "$out"

random_password() {
  openssl rand -base64 18 | tr -d '/+=\n'
}

if [ ! -f "$out/peer-ca.crt" ] || [ ! -f "$out/peer-ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/peer-ca.key" -out "$out/peer-ca.crt" -days 3650 \
    -subj "/CN=zmnode fleet CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "made $out/peer-ca.crt, peer-ca.key (the fleet CA)"
fi
if [ ! -f "$out/smtp-tls.crt" ] || [ ! -f "$out/smtp-tls.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/smtp-tls.key" -out "$out/smtp-tls.crt" -days 825 \
    -subj "/CN=$domain" \
    -addext "subjectAltName=DNS:$domain,DNS:*.$domain" 2>/dev/null
  echo "made $out/smtp-tls.crt, smtp-tls.key (self-signed for *.$domain; replace with a real certificate)"
fi
if [ ! -f "$out/scheduler.auth" ]; then
  pw=$(random_password)
  {
    echo "# scheduler.auth of the fleet (docs/scheduler.md): admind and mailq users."
    echo "nobody:nobody:SNMP QQ TT ETRN:[ipv6:::1]/128,[127.0.0.1]/32"
    echo "admin:$pw:ALL:[0.0.0.0]/0,[ipv6:::0]/0"
  } > "$out/scheduler.auth"
  echo "made $out/scheduler.auth: user admin, password $pw"
fi
if grep -q 'smtp-auth.passwd' "$overlay/kustomization.yaml" &&
   [ ! -f "$out/smtp-auth.passwd" ]; then
  pw=$(random_password)
  echo "alice:$(openssl passwd -6 "$pw")" > "$out/smtp-auth.passwd"
  echo "made $out/smtp-auth.passwd: submission user alice, password $pw"
fi
