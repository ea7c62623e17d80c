import sys

from lazymeta.cli import main

sys.exit(main())
