#!/usr/bin/env python3
"""Sigil conformance check with an independent Workload API client: the PyPI `spiffe` package.

Usage: python pyspiffe_check.py --socket unix:///path/api.sock --expect-id spiffe://td/path
           [--audience aud] [--rotation-timeout SECONDS]

Fetches the X.509 context and bundles, a JWT-SVID for --audience and validates it through the
agent (ValidateJWTSVID), then, with --rotation-timeout, watches the X.509 stream until the SVID's
serial changes. Prints one JSON object. Exit codes: 0 ok, 2 setup, 3 call failed, 4 mismatch.
"""
import argparse
import json
import sys
import threading


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--expect-id", required=True)
    ap.add_argument("--audience")
    ap.add_argument("--rotation-timeout", type=float, default=0)
    args = ap.parse_args()
    try:
        from spiffe import WorkloadApiClient
    except ImportError as e:
        print(f"error: py-spiffe missing: {e}", file=sys.stderr)
        return 2

    out = {}
    try:
        with WorkloadApiClient(socket_path=args.socket, default_timeout=10) as client:
            ctx = client.fetch_x509_context()
            svid = ctx.default_svid
            out["spiffe_id"] = str(svid.spiffe_id)
            out["chain_len"] = len(svid.cert_chain)
            out["serial"] = format(svid.leaf.serial_number, "x")
            out["bundles"] = sorted(b.trust_domain.name for b in ctx.x509_bundle_set.bundles)
            out["x509_bundles"] = sorted(
                b.trust_domain.name for b in client.fetch_x509_bundles().bundles
            )
            if args.audience:
                jwt = client.fetch_jwt_svid(audience={args.audience})
                out["jwt_spiffe_id"] = str(jwt.spiffe_id)
                validated = client.validate_jwt_svid(jwt.token, args.audience)
                out["jwt_validated_id"] = str(validated.spiffe_id)
                out["jwt_bundles"] = sorted(
                    b.trust_domain.name for b in client.fetch_jwt_bundles().bundles
                )
            if args.rotation_timeout > 0:
                first = out["serial"]
                seen = threading.Event()
                rotated = {}
                errors = []

                def on_success(c):
                    s = format(c.default_svid.leaf.serial_number, "x")
                    if s != first:
                        rotated["serial"] = s
                        seen.set()

                def on_error(e):
                    errors.append(repr(e))

                handler = client.stream_x509_contexts(on_success, on_error)
                ok = seen.wait(args.rotation_timeout)
                handler.cancel()
                out["rotated_serial"] = rotated.get("serial") if ok else None
                out["stream_errors"] = errors
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(json.dumps(out))
    if out["spiffe_id"] != args.expect_id:
        return 4
    if args.rotation_timeout > 0 and not out.get("rotated_serial"):
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
