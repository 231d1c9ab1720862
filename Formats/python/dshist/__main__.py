import sys

from .collect import main

sys.exit(main())
