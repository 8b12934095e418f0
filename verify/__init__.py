"""Independent verifier for drbdbackup repositories, written from docs/format.md alone.

It must never import ``drbdbackup``: a bug in the product's writer and reader cannot hide
behind a shared implementation.
"""
