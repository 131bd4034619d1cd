"""Child process for T01: random metastore writes, one acknowledgement line per committed operation."""

from __future__ import annotations

import random
import sys

from brickyard.catalog import Catalog, Database, Identity


def main() -> None:
    target, run, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    db = Database(target)
    ident = Identity(db)
    cat = Catalog(db, ident)
    admin = ident.by_name("root")
    assert admin is not None
    alive: list[str] = [line.strip() for line in sys.stdin if line.strip()]
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        r = rng.random()
        if r < 0.4 or not alive:
            name = f"k{run}x{n}"
            print(f"begin create {name}", flush=True)
            cat.create(admin, "catalog", name, comment=f"op {n}")
            alive.append(name)
            print(f"create {name}", flush=True)
        elif r < 0.7:
            name = rng.choice(alive)
            user = f"u{n % 5}"
            print(f"begin grant {name} {user}", flush=True)
            cat.update_grants(admin, "catalog", name, [{"principal": user, "add": ["USE_CATALOG", "CREATE_SCHEMA",
                                                                                    "BROWSE"]}])
            print(f"grant {name} {user}", flush=True)
        else:
            name = alive.pop(rng.randrange(len(alive)))
            print(f"begin drop {name}", flush=True)
            cat.delete(admin, "catalog", name, force=True)
            print(f"drop {name}", flush=True)


if __name__ == "__main__":
    main()
