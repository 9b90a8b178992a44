#!/usr/bin/env bash
# Test PKI for the peer rows (ECDSA P-256): root -> intermediate -> checkout and billing leaves
# with SPIFFE URI SANs and CNs (the peers check CNs), plus a foreign root and leaf.
# Usage: bench/pki.sh OUTDIR   (idempotent: keeps an existing complete set)
set -euo pipefail
D=$1; TD=cluster.local; DAYS=3650
mkdir -p "$D"; cd "$D"
[ -f billing-full.pem ] && [ -f ca-bundle.crt ] && exit 0
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
leaf_ext=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always'
int_ext=$'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always'
root() { # name td cn
  key "$1.key"
  openssl req -new -x509 -key "$1.key" -out "$1.crt" -days $DAYS -sha256 -subj "/O=$2/CN=$3" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectAltName=URI:spiffe://$2" 2>/dev/null
}
issue() { # name issuer subject extensions san
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
  printf '%s\nsubjectAltName=%s\n' "$4" "$5" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days $DAYS \
    -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
root root $TD "$TD root CA"
issue intermediate root "/O=$TD/CN=$TD intermediate CA" "$int_ext" "URI:spiffe://$TD"
issue checkout intermediate "/O=$TD/CN=checkout-service" "$leaf_ext" "URI:spiffe://$TD/ns/payments/sa/checkout-service"
issue billing intermediate "/O=$TD/CN=billing-service" "$leaf_ext" "URI:spiffe://$TD/ns/payments/sa/billing-service"
root foreign-root evil.local "evil.local root CA"
issue foreign foreign-root "/O=evil.local/CN=checkout-service" "$leaf_ext" "URI:spiffe://$TD/ns/payments/sa/checkout-service"
for w in checkout billing; do
  cat "$w.crt" intermediate.crt > "$w-chain.crt"
  cat "$w.key" "$w.crt" intermediate.crt > "$w-full.pem"
done
cat root.crt intermediate.crt > ca-bundle.crt
chmod 644 ./*.crt; chmod 600 ./*.key ./*-full.pem
