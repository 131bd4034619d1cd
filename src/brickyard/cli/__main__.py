"""``python -m brickyard.cli``: the same as the ``brickyard`` command."""

from . import main

main()
