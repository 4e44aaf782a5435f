#!/usr/bin/env python3
"""An independent implementation of cnbackup's sealed object format, version 1.

It exists for tests that play the bucket writer (scripts/e2e-attacker.sh): someone who holds the
bucket's write credentials and can read every object's header, but holds no private key. Such a writer can seal
arbitrary plaintext to the public recipient keys (`cnb1-x25519-pub-...`) and produce an object that
cnbackup's reader accepts as well-formed; the tests check what cnbackup then trusts (signed
manifests, plaintext digest HMACs, descriptions) rather than the seal alone.

It is written from docs/FORMAT.md ("Sealed object" and "Keys"), not from the Swift code, so that it
is a second reading of the specification. `selftest` rebuilds the golden vector printed in
docs/FORMAT.md byte for byte.

  seal --recipient PUB [--recipient PUB2] [--description-from OBJECT | --description JSON]
       [--segment-size N] < plaintext > object
  header-info OBJECT          the parsed header as JSON (needs no key)
  selftest                    check against the golden vector in docs/FORMAT.md

Needs the `cryptography` package.
"""
import argparse
import base64
import hashlib
import hmac
import io
import json
import os
import re
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAGIC, VERSION = b"cnb-seal", 1
MIN_SEGMENT, MAX_SEGMENT, DEFAULT_SEGMENT = 64, 16 << 20, 1 << 20
MAX_DESCRIPTION, MAX_STANZAS, MAC_SIZE, TAG_SIZE = 64 << 10, 64, 32, 16
STANZA_X25519, STANZA_SYMMETRIC = 1, 2
STANZA_KINDS = {STANZA_X25519: "x25519", STANZA_SYMMETRIC: "symmetric"}
DESCRIPTION_FIELDS = {"setId", "node", "migrationId", "serial", "component", "role", "captureStart"}
X25519_PUBLIC_PREFIX = "cnb1-x25519-pub-"


def hkdf(ikm, salt, info, length):
    # RFC 5869: an empty salt is the same as HashLen zero bytes, which is what salt=None gives.
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def decode_key(text, prefix):
    """PREFIX || base64url-without-padding(key (32) || SHA-256(PREFIX || key)[0..4])."""
    text = text.strip()
    if not text.startswith(prefix):
        sys.exit(f"independent-sealer: a key must start with {prefix}")
    body = text[len(prefix):]
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        payload = b""
    key, checksum = payload[:32], payload[32:]
    if len(payload) != 36 or hashlib.sha256(prefix.encode() + key).digest()[:4] != checksum:
        sys.exit(f"independent-sealer: the {prefix}... key is damaged (length or checksum)")
    return key


def canonical_description(obj):
    """Canonical JSON: sorted keys, no whitespace."""
    if not isinstance(obj, dict):
        sys.exit("independent-sealer: a description must be a JSON object")
    unknown = set(obj) - DESCRIPTION_FIELDS
    if unknown:
        print(f"independent-sealer: warning: fields not in docs/FORMAT.md: {sorted(unknown)}", file=sys.stderr)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def derived_keys(data_key):
    """(mac key, payload key, digest key) from the object's data key."""
    return tuple(hkdf(data_key, b"", label, 32) for label in
                 (b"cnbackup v1 header mac", b"cnbackup v1 payload", b"cnbackup v1 plaintext digest"))


def x25519_stanza(recipient_public, data_key, ephemeral_secret=None):
    """type 0x01 | SHA-256(recipient public)[0..8] | length | ephemeral public (32) | wrapped (48)."""
    ephemeral = (X25519PrivateKey.from_private_bytes(ephemeral_secret) if ephemeral_secret
                 else X25519PrivateKey.generate())
    ephemeral_public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    if shared == bytes(32):
        sys.exit("independent-sealer: all-zero X25519 shared secret (a low-order recipient key)")
    wrap_key = hkdf(shared, ephemeral_public + recipient_public, b"cnbackup v1 x25519 wrap", 32)
    wrapped = AESGCM(wrap_key).encrypt(bytes(12), data_key, None)
    return STANZA_X25519, hashlib.sha256(recipient_public).digest()[:8], ephemeral_public + wrapped


def symmetric_stanza(key, data_key, salt=None):
    """type 0x02 | HKDF key id | length | salt (16) | wrapped (48). Only the golden vector uses it:
    the bucket writer holds no symmetric key."""
    salt = salt or os.urandom(16)
    wrap_key = hkdf(key, salt, b"cnbackup v1 symmetric wrap", 32)
    key_id = hkdf(key, b"", b"cnbackup v1 symmetric key id", 8)
    return STANZA_SYMMETRIC, key_id, salt + AESGCM(wrap_key).encrypt(bytes(12), data_key, None)


def build_header(description, segment_size, stanzas, mac_key):
    if not MIN_SEGMENT <= segment_size <= MAX_SEGMENT:
        sys.exit(f"independent-sealer: segment size {segment_size} is outside {MIN_SEGMENT}..{MAX_SEGMENT}")
    if len(description) > MAX_DESCRIPTION:
        sys.exit("independent-sealer: the description is over 64 KiB")
    if not 1 <= len(stanzas) <= MAX_STANZAS:
        sys.exit(f"independent-sealer: {len(stanzas)} recipients; 1 to {MAX_STANZAS} allowed")
    header = MAGIC + bytes([VERSION]) + segment_size.to_bytes(4, "big")
    header += len(description).to_bytes(4, "big") + description + bytes([len(stanzas)])
    for kind, key_id, body in stanzas:
        header += bytes([kind]) + key_id + len(body).to_bytes(2, "big") + body
    return header + hmac.new(mac_key, header, hashlib.sha256).digest()


def read_exactly(stream, n):
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def sealed_segments(stream, payload_key, segment_size):
    """Yields sealed segments. Nonce = 11-byte big-endian counter | 0x01 on the last, else 0x00.
    Every segment but the last is full; the last is always present (empty only for empty input)."""
    aead, counter = AESGCM(payload_key), 0
    current = read_exactly(stream, segment_size)
    while True:
        following = read_exactly(stream, segment_size) if len(current) == segment_size else b""
        last = not following
        nonce = counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        yield aead.encrypt(nonce, current, None)
        if last:
            return
        current, counter = following, counter + 1


def parse_header(data):
    """Parses a header from the front of `data` (no key needed: nothing is checked but its shape)."""
    def take(n, part):
        nonlocal pos
        if pos + n > len(data):
            raise ValueError(f"cut short in its header ({part})")
        pos += n
        return data[pos - n:pos]
    pos = 0
    if take(8, "magic") != MAGIC:
        raise ValueError('does not start with "cnb-seal"')
    version = take(1, "version")[0]
    if version != VERSION:
        raise ValueError(f"version {version}, not 1")
    segment_size = int.from_bytes(take(4, "segment size"), "big")
    description = take(int.from_bytes(take(4, "description length"), "big"), "description")
    stanzas = []
    for _ in range(take(1, "stanza count")[0]):
        kind, key_id = take(1, "stanza type")[0], take(8, "key id").hex()
        body = take(int.from_bytes(take(2, "stanza length"), "big"), "stanza body")
        stanzas.append({"type": kind, "kind": STANZA_KINDS.get(kind, "unknown"), "keyId": key_id,
                        "bodyLength": len(body)})
    mac = take(MAC_SIZE, "header MAC")
    return {"version": version, "segmentSize": segment_size, "descriptionBytes": description,
            "stanzas": stanzas, "headerMAC": mac.hex(), "headerLength": pos}


def read_header_of(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return parse_header(data), len(data)
    except ValueError as error:
        sys.exit(f"independent-sealer: {path}: not a well-formed sealed object: {error}")


def cmd_seal(args):
    if args.description_from:
        description = read_header_of(args.description_from)[0]["descriptionBytes"]  # copied verbatim
    else:
        description = canonical_description(json.loads(args.description or "{}"))
    data_key = os.urandom(32)
    mac_key, payload_key, _ = derived_keys(data_key)
    stanzas = [x25519_stanza(decode_key(r, X25519_PUBLIC_PREFIX), data_key) for r in args.recipient]
    out = sys.stdout.buffer
    out.write(build_header(description, args.segment_size, stanzas, mac_key))
    for segment in sealed_segments(sys.stdin.buffer, payload_key, args.segment_size):
        out.write(segment)
    out.flush()


def cmd_header_info(args):
    info, stored_size = read_header_of(args.object)
    raw = info.pop("descriptionBytes")
    description = json.loads(raw)
    info.update(description=description, descriptionLength=len(raw), storedSize=stored_size,
                descriptionIsCanonical=raw == json.dumps(description, sort_keys=True, separators=(",", ":"),
                                                         ensure_ascii=False).encode())
    payload, sealed = stored_size - info["headerLength"], info["segmentSize"] + TAG_SIZE
    info["segmentCount"] = -(-payload // sealed) if payload >= TAG_SIZE else None
    print(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False))


def cmd_selftest(args):
    spec = open(args.format_md, encoding="utf-8").read().split("## Golden vector", 1)[1]
    expected = bytes.fromhex("".join(re.search(r"```\n([0-9a-f\n]+)```", spec).group(1).split()))
    description = canonical_description({
        "captureStart": "2026-11-25T04:00:00.000Z", "component": "identities", "migrationId": 3,
        "node": "sv-1", "role": "identities", "serial": 0, "setId": "20261125T040000Z-0a1b2c3d"})
    plaintext = (b"cnbackup golden vector: two segments of 64 bytes and a short last one.\n"
                 + b"0123456789abcdef" * 4 + b"!")
    assert len(plaintext) == 136
    data_key = b"\x33" * 32
    recipient = X25519PrivateKey.from_private_bytes(b"\x11" * 32).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    mac_key, payload_key, _ = derived_keys(data_key)
    stanzas = [x25519_stanza(recipient, data_key, b"\x44" * 32),
               symmetric_stanza(b"\x22" * 32, data_key, b"\x55" * 16)]
    got = build_header(description, 64, stanzas, mac_key) + b"".join(
        sealed_segments(io.BytesIO(plaintext), payload_key, 64))
    if got != expected:
        sys.exit(f"selftest FAILED: golden vector differs\n expected {expected.hex()}\n got      {got.hex()}")
    print(f"selftest ok: golden vector of {len(got)} bytes matches docs/FORMAT.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seal = sub.add_parser("seal", help="seal standard input to X25519 recipients")
    seal.add_argument("--recipient", action="append", required=True, help="cnb1-x25519-pub-...; repeatable")
    source = seal.add_mutually_exclusive_group()
    source.add_argument("--description-from", metavar="OBJECT_FILE", help="copy a real object's description")
    source.add_argument("--description", metavar="JSON", help="a description object (canonicalised)")
    seal.add_argument("--segment-size", type=int, default=DEFAULT_SEGMENT)
    seal.set_defaults(run=cmd_seal)
    info = sub.add_parser("header-info", help="print an object's header as JSON")
    info.add_argument("object")
    info.set_defaults(run=cmd_header_info)
    selftest = sub.add_parser("selftest", help="rebuild the golden vector of docs/FORMAT.md")
    selftest.add_argument("--format-md", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "..", "docs", "FORMAT.md"))
    selftest.set_defaults(run=cmd_selftest)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
