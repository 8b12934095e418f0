import sys

from drbdbackup.cli import main

sys.exit(main())
