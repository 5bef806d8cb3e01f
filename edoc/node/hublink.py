"""The node's side of the hub protocol: one kept-alive HTTPS session (the node's client
certificate and token) through :class:`edoc.client.HubClient`, and what the node adds to
it: small package files read in one offload call, which packages may go many to a request
(the outbox sends those with the client's post_packages)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from edoc import framing, tls, wire
from edoc.client import HubClient
from edoc.hub.state import HUB_ORG_ID
from edoc.keyindex import KeyIndex
from edoc.keystore import KeyStore
from edoc.node.state import NodeConfig, NodeState


class _HubConnector(aiohttp.TCPConnector):
    """Connections to the hub whose server certificate is the hub organization's and
    one the CA has not revoked: OpenSSL checks its chain and host only (edoc.tls), so any
    certificate the CA issued for the hub's address would do (a node's, stolen). Asked
    at each request, a kept-alive connection too, of the key index, which reloads the CRL
    when it changes (one stat). A refused connection is the client's HubUnreachable:
    documents wait in the outbox, as when the hub is down, until the hub serves with a
    certificate that stands."""

    def __init__(self, keys: KeyIndex, context: ssl.SSLContext, hub_org: str) -> None:
        super().__init__(ssl=context, limit=32)
        self._keys, self._hub_org = keys, hub_org

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        try:
            refused = self._refusal(connection)
        except BaseException:  # (a key store that cannot be read): not left acquired
            connection.close()
            raise
        if refused is not None:
            connection.close()
            raise aiohttp.ClientConnectionError(refused)
        return connection

    def _refusal(self, connection: Connection) -> str | None:
        """Why the hub's server certificate on ``connection`` is refused; None: it stands."""
        transport = connection.transport
        peer = tls.peer(transport.get_extra_info("ssl_object") if transport else None)
        if peer is None:
            return "the hub presented no certificate"
        if peer.org_id != self._hub_org:
            return f"the hub's server certificate is of {peer.org_id}, not the hub's"
        revoked = tls.revocation(peer, self._keys)
        return None if revoked is None else f"the hub's server {revoked}"


def open_hub(config: NodeConfig, keys: KeyStore) -> HubClient:
    """The node's client of its hub; close it with ``await hub.close()``.

    Over TLS each request presents the node's newest valid TLS certificate
    (tls.OwnCertificate): a certificate issued after the CA revoked the one before is
    taken at the next request. aiohttp pools connections by their context, so none kept
    alive with the old one is used again (the hub would refuse each request on it)."""
    own = (
        tls.OwnCertificate(keys, config.org_id, ssl.Purpose.SERVER_AUTH) if config.hub_tls else None
    )
    connector = (
        _HubConnector(keys, own.context(), HUB_ORG_ID)
        if own
        else aiohttp.TCPConnector(ssl=True, limit=32)
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
    )
    context = own.context if own else True
    return HubClient(config.hub_url, config.hub_token, ssl_context=context, session=session)


SMALL_PACKAGE = 1024 * 1024  # read whole in one offload call; larger ones are streamed


def _small_package(path: Path) -> bytes | None:
    with path.open("rb") as file:
        return file.read() if os.fstat(file.fileno()).st_size <= SMALL_PACKAGE else None


async def post_package(state: NodeState, package: bytes | Path) -> wire.PackageAccepted:
    """Send a package (its bytes, or its file): the hub's answer; RemoteError when the hub
    refuses it (or, 401/403 EDOC-AUTH-*, the node: refusal.refuses_the_node tells them
    apart), HubUnavailable when it may take it later.

    A small file is read in one offload call: aiohttp streams a file with a call to its
    own thread pool for each chunk and one to close it."""
    if isinstance(package, Path):
        small = await state.offload.run(_small_package, package)
        if small is None:
            with package.open("rb") as body:
                return await state.hub.post_package(body)
        package = small
    return await state.hub.post_package(package)


def batched(size: int) -> bool:
    """Whether a package of ``size`` bytes may go in a batch (a larger one goes alone)."""
    return size <= wire.BATCH_BYTES - framing.overhead(1)


async def fetch(state: NodeState, delivery: wire.DeliveryNotice, target: Path) -> Path:
    """A collected delivery's package that did not come inside the collect answer,
    downloaded to ``target``."""
    return await state.hub.download(delivery.id, target)


MAX_DIRECTORY_BYTES = 64 * 1024 * 1024  # what directory.read_signed will parse


async def directory(state: NodeState, held: str = "") -> wire.Book | None:
    """The hub's signed address book, as the hub sent it (verified by the caller); None
    while the hub's is still the one the ETag ``held`` names."""
    return await state.hub.directory(MAX_DIRECTORY_BYTES, held)
