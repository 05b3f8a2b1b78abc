"""The ``matrix-edge`` console script.

- ``matrix-edge serve [--config F] [--data-dir D] [--host H] [--port P] [--server-name S]``
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
        )
    except ConfigError as exc:
        print(f"matrix-edge: {exc}", file=sys.stderr)
        return 2
    from local_runtime.server import serve as run_server

    run_server(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
