"""The embedded SQLite backend: one file per service, WAL, group commit.

``database.py`` holds what both stores share (connection, transactions, errors);
``hub.py`` and ``node.py`` implement :mod:`edoc.store.hub` and :mod:`edoc.store.node`.
"""
