# The shared test helpers (helpers.py, toy_models.py, ...) live here; the
# tests in the sub-folders (which mirror the package) import them by name.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
