"""`python -m livejpp` is the `livejpp` command."""

from livejpp.cli import main

raise SystemExit(main())
