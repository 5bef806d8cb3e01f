"""The PostgreSQL backend: stores several service instances share (asyncpg)."""
