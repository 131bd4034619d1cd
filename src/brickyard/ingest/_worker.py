"""The parsing subprocess.

``python -m brickyard.ingest._worker PATH NAME`` parses one file and prints one JSON line, ``{"ok": parsed}`` or
``{"error": {"kind", "message"}}``. ``python -m brickyard.ingest._worker --serve`` parses a file per request
line (``{"path", "name"}``) and answers each with one such line, so a folder is parsed without starting a
Python per file. Each file gets its own CPU budget; memory and file-size limits hold for the process."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _parse_one(path: Path, name: str) -> dict[str, object]:
    from brickyard.ingest._parse import ParseError, parse

    try:
        data = path.read_bytes()
        return {"ok": parse(data, name, size=len(data))}
    except ParseError as exc:
        return {"error": {"kind": exc.kind, "message": str(exc)}}
    except MemoryError:
        return {"error": {"kind": "TOO_LARGE", "message": "parsing needed more memory than allowed"}}
    except RecursionError:
        return {"error": {"kind": "UNSAFE", "message": "the document nests too deeply"}}
    except OSError as exc:
        return {"error": {"kind": "UNSUPPORTED", "message": f"cannot read the file ({exc.strerror})"}}
    except Exception as exc:  # noqa: BLE001 - any parser failure on untrusted input is a corrupt file
        return {"error": {"kind": "CORRUPT", "message": f"cannot parse the file ({type(exc).__name__})"}}


def _serve() -> None:
    from brickyard.ingest._sandbox import CPU_SECONDS

    for line in sys.stdin:
        request = json.loads(line)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(usage.ru_utime + usage.ru_stime) + 1
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (min(spent + CPU_SECONDS, hard), hard))  # this file's budget
        out = _parse_one(Path(request["path"]), request["name"])
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def main() -> None:
    from brickyard.ingest._sandbox import FILES_PER_WORKER, limit_self

    serving = sys.argv[1:] == ["--serve"]
    limit_self(files=FILES_PER_WORKER if serving else 1)
    if serving:
        _serve()
        return
    out = _parse_one(Path(sys.argv[1]), sys.argv[2])
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
