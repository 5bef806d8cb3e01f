"""The machine's own limit: raw RSA-2048 PKCS#1 v1.5 SHA-256 signatures per second on one core.

Every network figure is reported as a ratio to this, so results compare across machines.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def rsa_signatures_per_second(seconds: float) -> float:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"edoc bench: a SignedInfo is about this long once canonicalised " * 8
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        count += 50
    return count / elapsed
