"""The edXML namespace and the ids of the parts edoc.signing signs."""

from __future__ import annotations

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
NSMAP = {"edXML": NS}


# Ids of the signed parts (edoc.signing references exactly these).
HEADER_ID = "edoc-MessageHeader"
ORIGIN_ID = "edoc-Origin"  # the sender's own TraceHeader: when it signed
BUSINESS_ID = "edoc-Bussiness"
MANIFEST_ID = "edoc-Manifest"


def q(name: str) -> str:
    """Qualified edXML tag name."""
    return f"{{{NS}}}{name}"
