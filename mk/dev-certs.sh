#!/usr/bin/env bash
# Generates development TLS material for envoy/mcp-gateway.yaml's TLS listener:
#   <dir>/ca.crt      a throw-away CA (clients trust it: curl --cacert <dir>/ca.crt)
#   <dir>/server.crt  a server certificate for localhost and 127.0.0.1, signed by that CA
#   <dir>/server.key  its key (ECDSA P-256)
# Never use these in production: point the listener at your own certificate instead.
# Usage: mk/dev-certs.sh <dir>   (writes into <dir>, which must not exist yet or be empty)
set -euo pipefail
dir=${1:?usage: mk/dev-certs.sh <dir>}
mkdir -p "$dir"
cd "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$work/ca.key" -out ca.crt -days 3650 -subj "/CN=mcp-wasm-filters dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout server.key -out "$work/server.csr" -subj "/CN=localhost" 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA ca.crt -CAkey "$work/ca.key" -set_serial 0x$(openssl rand -hex 8) \
  -out server.crt -days 825 -extfile "$work/ext" 2>/dev/null
chmod 600 server.key
