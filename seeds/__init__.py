"""The organizations, traffic profiles and samples, shipped as the package ``edoc.seeds``.

A package (not a bare folder) because setuptools' editable install maps regular
packages only; edoc reads these files through edoc/resources.py.
"""
