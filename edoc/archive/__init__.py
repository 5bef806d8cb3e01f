"""The non-repudiation archive: time-stamped evidence of every document, verifiable
offline for years with the root certificate alone.

* :mod:`~edoc.archive.tsa`: the simulated RFC 3161 time-stamping authority (its
  certificate: ``edoc keys tsa``);
* :mod:`~edoc.archive.merkle`, :mod:`~edoc.archive.batches`: one token every few seconds
  over a Merkle tree of the packages a node kept;
* :mod:`~edoc.archive.stamping`: that, as a running node's and hub's own background task
  (``edoc archive stamp`` for a node run without it);
* :mod:`~edoc.archive.hub`: the hub's evidence, the packages it accepted (its batches,
  kept ``edoc serve hub --evidence-days``);
* :mod:`~edoc.archive.evidence`, :mod:`~edoc.archive.stored`: what a node kept of a
  document, read from its store;
* :mod:`~edoc.archive.manifest`, :mod:`~edoc.archive.container`: one document's evidence
  as an ASiC-E container;
* :mod:`~edoc.archive.day`: an organization's day of containers, hash-chained to the day
  before;
* :mod:`~edoc.archive.export`, :mod:`~edoc.archive.api`: ``edoc archive export`` and the
  agency API's evidence routes;
* :mod:`~edoc.archive.verify`: checking a container (``edoc archive verify``).
"""
