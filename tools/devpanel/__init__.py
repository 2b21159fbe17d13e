# Makes tools/devpanel a package so `python3 -m unittest discover -s tools -t tools` finds
# test_devpanel.py (Python 3.11+ discovery skips directories without __init__.py).
# The modules themselves are imported by plain name, with this directory on sys.path.
