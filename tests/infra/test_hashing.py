"""infra/hashing.py: the one place hashes are made, agreeing with the recipe's chain hash."""

from __future__ import annotations

import hashlib

from catalog.recipe import BUILTIN_RECIPES
from infra.hashing import sha256_bytes, sha256_file, short_hash, short_text_hash


def test_file_and_bytes_hashes_are_plain_sha256(tmp_path):
    data = bytes(range(256)) * 5000  # more than one block
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sha256_file(path, block=7) == sha256_file(path)
    assert sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert short_text_hash("name") == hashlib.sha256(b"name").hexdigest()[:32]


def test_short_hash_is_canonical_and_agrees_with_the_chain_hash():
    assert short_hash({"b": 1, "a": [1, 2]}) == short_hash({"a": [1, 2], "b": 1})
    for recipe in BUILTIN_RECIPES.values():
        assert short_hash(recipe.chain()) == recipe.chain_hash()
