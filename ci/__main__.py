"""``python -m ci`` runs the restore drill."""

import sys

from .restore_drill import main

sys.exit(main())
