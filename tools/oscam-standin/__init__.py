# Makes this directory a package so that `python3 -m unittest discover -s tools -t tools`
# descends into it (discovery skips directories without __init__.py).  Nothing to import here.
