import sys

from fmuia.cli.main import main

sys.exit(main())
