"""`python -m tornado_app`: run the plain server."""

import sys

from .cli import main

sys.exit(main())
