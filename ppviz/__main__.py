"""``python -m ppviz`` is the same as the ``ppviz`` console script."""

from ppviz.cli import main

raise SystemExit(main())
