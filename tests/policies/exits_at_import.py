"""A module that ends the process when imported: loading it is a policy load failure."""

import sys

sys.exit(3)
