"""The parsing subprocess: ``python -m brickyard.ingest._worker PATH NAME`` prints one JSON line,
``{"ok": parsed}`` or ``{"error": {"kind", "message"}}``. The parent sets its resource limits."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    from brickyard.ingest._sandbox import limit_self

    limit_self()
    path, name = Path(sys.argv[1]), sys.argv[2]
    from brickyard.ingest._parse import ParseError, parse

    try:
        data = path.read_bytes()
        out: dict[str, object] = {"ok": parse(data, name, size=len(data))}
    except ParseError as exc:
        out = {"error": {"kind": exc.kind, "message": str(exc)}}
    except MemoryError:
        out = {"error": {"kind": "TOO_LARGE", "message": "parsing needed more memory than allowed"}}
    except RecursionError:
        out = {"error": {"kind": "UNSAFE", "message": "the document nests too deeply"}}
    except Exception as exc:  # noqa: BLE001 - any parser failure on untrusted input is a corrupt file
        out = {"error": {"kind": "CORRUPT", "message": f"cannot parse the file ({type(exc).__name__})"}}
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
