import sys

from reasonloop.cli import main

sys.exit(main())
