"""The edXML and metadata schemas, shipped as the package ``edoc.schemas``.

A package (not a bare folder) because setuptools' editable install maps regular
packages only; edoc reads these files through edoc/resources.py.
"""
