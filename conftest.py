# Makes the tests import this checkout's internvl_optim (pytest puts the
# directory of a root conftest.py on sys.path), whatever is installed.
