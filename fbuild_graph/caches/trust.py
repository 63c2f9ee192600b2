"""Authenticity of cache bundles: Ed25519 keys and the detached signature `BUNDLE.sig` beside a bundle.

The digests inside a bundle catch accidents only: whoever can change a bundle can fix its manifests too. A
signature is what ties a bundle to its baker. `BUNDLE.sig` is a small JSON file, like minisign's detached
signature: the sha256 of the bundle file and an Ed25519 signature over "FORMAT\\nsha256 HEX\\n". The key is
checked first, then the digest, so each refusal says truly what is wrong.

Private keys are unencrypted PKCS#8 PEM (keep them in the CI's secret store), public keys SubjectPublicKeyInfo
PEM: `openssl pkey` reads both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fbuild_graph.errors import FbuildError

SIGNATURE_SUFFIX = ".sig"
PUBLIC_SUFFIX = ".pub"
_FORMAT = "fbuild-graph bundle signature 1"
_KEYGEN = "make a pair with `fbuild-graph cache keygen -o KEYFILE`"


def signature_path(bundle: str) -> str:
    return bundle + SIGNATURE_SUFFIX


def keygen(path: str) -> str:
    """Write a new private key to `path` (mode 0600) and its public key to path.pub; return the latter.
    Refuses to replace either: a lost private key cannot be recovered, and bundles signed by it would stop
    verifying."""
    public = path + PUBLIC_SUFFIX
    for existing in (path, public):
        if os.path.lexists(existing):
            raise FbuildError(f"{existing} already exists; choose another KEYFILE or delete it first")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    written = []
    try:
        for target, data, mode in ((path, private_pem, 0o600), (public, public_pem, 0o644)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            written.append(target)
            with open(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)  # the umask must not loosen or tighten what the mode promises
                f.write(data)
    except OSError as exc:
        for target in written:
            os.unlink(target)
        raise FbuildError(f"cannot write key {exc.filename or path}: {exc.strerror}; choose a writable KEYFILE") \
            from None
    return public


def load_private_key(path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError):  # not PEM, another algorithm's encoding, or encrypted
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise FbuildError(f"signing key {path} is not an unencrypted Ed25519 private key in PEM; {_KEYGEN}")
    return key


def load_public_keys(paths: Sequence[str]) -> tuple[Ed25519PublicKey, ...]:
    keys = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(_read(path, "trusted key"))
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise FbuildError(f"trusted key {path} is not an Ed25519 public key in PEM (the KEYFILE{PUBLIC_SUFFIX} "
                              f"that keygen wrote); {_KEYGEN}")
        keys.append(key)
    return tuple(keys)


def sign(bundle: str, key: Ed25519PrivateKey) -> str:
    """Write BUNDLE.sig (through a temporary name) for the bundle as it is now; return its path."""
    try:
        with open(bundle, "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise FbuildError(f"cannot read cache bundle {bundle} to sign it: {exc.strerror}") from None
    record = {"format": _FORMAT, "sha256": sha, "ed25519": base64.b64encode(key.sign(_message(sha))).decode()}
    target = signature_path(bundle)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, target)
    except OSError as exc:
        raise FbuildError(f"cannot write signature {target}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def verify(bundle: str, sha256: str, keys: Sequence[Ed25519PublicKey]) -> None:
    """Return if BUNDLE.sig is a signature by one of `keys` over `sha256`, the digest of the bundle's bytes
    about to be unpacked; else raise FbuildError saying which of those is not so."""
    path = signature_path(bundle)
    if not os.path.lexists(path):
        raise FbuildError(f"cache bundle {bundle} is not signed (no {path}) and --trust accepts signed bundles "
                          "only; bake it with --sign KEYFILE, or drop --trust")
    signed, signature = _read_signature(path)
    if not any(_valid(key, signature, _message(signed)) for key in keys):
        raise FbuildError(f"cache bundle {bundle}: {path} is not a signature by a --trust key; use a bundle "
                          "signed by a trusted key, or trust the key that signed it")
    if signed != sha256:
        raise FbuildError(f"cache bundle {bundle} was changed after it was signed (its sha256 differs from "
                          f"{path}); use the bundle as it was signed")


def _message(sha256: str) -> bytes:
    return f"{_FORMAT}\nsha256 {sha256}\n".encode()


def _valid(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _read_signature(path: str) -> tuple[str, bytes]:
    """(signed sha256, signature bytes) from a .sig file, whose shape is checked."""
    try:
        record = json.loads(_read(path, "signature"))
        if record["format"] != _FORMAT or not isinstance(record["sha256"], str):
            raise ValueError
        return record["sha256"], base64.b64decode(record["ed25519"], validate=True)
    except (ValueError, TypeError, KeyError):  # bad JSON, UTF-8 or base64; another shape
        raise FbuildError(f"signature {path} is not an fbuild-graph bundle signature; sign the bundle again "
                          "with `fbuild-graph cache bake --sign KEYFILE`") from None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16)  # keys and signatures are a few hundred bytes
    except OSError as exc:
        raise FbuildError(f"{what} {path} cannot be read: {exc.strerror}") from None
