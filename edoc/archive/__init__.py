"""The non-repudiation archive: time-stamped evidence of every document, verifiable
offline with the root certificate alone (ASiC-E containers in hash-chained day archives).

* :mod:`edoc.archive.tsa`: the simulated RFC 3161 time-stamping authority;
"""
