"""``python -m crowdnb`` is the ``crowdnb`` command."""

from .cli import main

main()
