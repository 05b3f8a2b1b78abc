"""The ``matrix-edge`` console script.

- ``matrix-edge serve [--config F] [--data-dir D] [--host H] [--port P] [--server-name S]
  [--federation-port P --tls-cert F --tls-key F --federation-no-verify-tls
  --federation-allow-loopback]``
- ``matrix-edge spec <command>``: the pure spec algorithms on JSON (see spec_commands).
"""

from __future__ import annotations

import argparse
import sys

from local_runtime.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["spec"]:
        from local_runtime import spec_commands

        return spec_commands.main(argv[1:])

    parser = argparse.ArgumentParser(prog="matrix-edge", description="A Matrix homeserver shaped like an edge platform.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the homeserver")
    serve.add_argument("--config", help="TOML config file (see wrangler.toml.example and README)")
    serve.add_argument("--data-dir", help="where the database and actor storage live (default ./data)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8008)")
    serve.add_argument("--server-name", help="the server name in user and room IDs (default localhost:8008)")
    serve.add_argument("--public-baseurl", help="the client base URL advertised in .well-known")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--federation-port", type=int, help="port of the TLS federation listener (default: none)")
    serve.add_argument("--tls-cert", help="PEM certificate for the federation listener (default: self-signed)")
    serve.add_argument("--tls-key", help="PEM private key for the federation listener")
    serve.add_argument(
        "--federation-no-verify-tls", action="store_true",
        help="do not check remote servers' TLS certificates (local testing only)",
    )
    serve.add_argument(
        "--federation-allow-loopback", action="store_true",
        help="allow federation requests to 127.0.0.0/8 and ::1 (local testing only)",
    )
    sub.add_parser("spec", help="run a spec algorithm on JSON: resolve-state, check-auth, verify-event")
    args = parser.parse_args(argv)

    try:
        config = load_config(
            args.config,
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            server_name=args.server_name,
            public_baseurl=args.public_baseurl,
            log_level=args.log_level,
            federation_port=args.federation_port,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            federation_verify_tls=False if args.federation_no_verify_tls else None,
            federation_allow_loopback=True if args.federation_allow_loopback else None,
        )
    except ConfigError as exc:
        print(f"matrix-edge: {exc}", file=sys.stderr)
        return 2
    from local_runtime.server import serve as run_server

    run_server(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
