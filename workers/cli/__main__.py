"""``python -m workers.cli`` runs the ``tubeline`` command."""

from workers.cli import main

main()
