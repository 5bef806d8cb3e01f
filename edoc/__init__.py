"""edoc: electronic document exchange between state agencies (edXML, QCVN 102:2016)."""

__version__ = "0.1.0"
