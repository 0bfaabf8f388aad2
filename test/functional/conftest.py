"""The relay's programs for the functional tests come from the base image (harness/imagetools.py).

Activated when this folder is collected, before the test modules are
imported: their ``skipif(shutil.which(...))`` marks then see the image's
programs.  The first run builds the image (a minute or two, cached).
"""

from harness import imagetools

imagetools.activate()
