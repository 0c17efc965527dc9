#!/usr/bin/env python3
"""Regenerates the DKIM known-answer vectors for src/mail/dkim.rs with dkimpy.

dkimpy is an independent DKIM implementation (pure-Python RSA, PyNaCl for Ed25519), so the Rust
tests compare against a second opinion rather than against themselves. The Rust tests never run
this script; they read the files it writes.

    python3 -m venv /tmp/dkimvenv
    /tmp/dkimvenv/bin/pip install dkimpy pynacl cryptography
    cd src/mail/testdata && /tmp/dkimvenv/bin/python generate.py

The keys (*.pem) are TEST-ONLY keys made with `openssl genpkey`; they sign nothing real.
"""

import base64
import re

import dkim
from cryptography.hazmat.primitives import serialization

DOMAIN = b"buecherstube.example"
SELECTOR = b"ob2025"
TIMESTAMP = 1748934900  # 2025-06-03T07:15:00Z
# The headers optbridge signs, in its order, as far as present in the message.
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
          b"content-type", b"list-unsubscribe", b"list-unsubscribe-post"]

BOUNDARY = "=_ob_0197a2f4c3e8"
MESSAGE = "\r\n".join([
    "From: =?UTF-8?Q?B=C3=BCcherstube_M=C3=BCller?= <news@buecherstube.example>",
    "To: Anna  Beispiel <anna@example.net>",
    # Encoded word split over two folded lines, as a long non-ASCII subject is sent.
    "Subject: =?UTF-8?Q?Ihre_Einladung:_Angebote_der_B=C3=BCcherstube_M=C3=BCller_?=",
    " =?UTF-8?Q?auch_per_SMS_=E2=80=93_jetzt_best=C3=A4tigen?=",
    "Date: Tue, 03 Jun 2025 09:15:00 +0200",
    "Message-ID: <0197a2f4-c3e8-7b21-9d0e-5f1a2b3c4d5e@buecherstube.example>",
    "MIME-Version: 1.0",
    "X-Mailer: optbridge 0.1.0",
    # Folded with a tab and trailing spaces before the fold: relaxed canonicalization collapses both.
    "Content-Type: multipart/alternative;   ",
    f'\tboundary="{BOUNDARY}"',
    "List-Unsubscribe: <https://optbridge.example/u/3q2-7Xz9kLmN0pQ>,",
    " <mailto:unsubscribe+3q2-7Xz9kLmN0pQ@optbridge.example>",
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    "",
    "This is a multi-part message in MIME format.",
    "",
    f"--{BOUNDARY}",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Hallo Anna,   ",
    "",
    "Sie erhalten unsere Angebote per E-Mail. M=C3=B6chten Sie sie auch\t per SMS?",
    "Best=C3=A4tigen Sie hier: https://optbridge.example/l/3q2-7Xz9kLmN0pQ \t",
    "",
    "Ihre B=C3=BCcherstube M=C3=BCller",
    "",
    f"--{BOUNDARY}",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "<!doctype html>",
    "<html><body>  ",
    "<p>Hallo Anna,</p>",
    "<p>Sie erhalten unsere Angebote per E-Mail. M=C3=B6chten Sie sie auch per SM=",
    "S?</p>",
    '<p><a href=3D"https://optbridge.example/l/3q2-7Xz9kLmN0pQ">Jetzt best=C3=A4tigen</a></p>',
    "</body></html>",
    "",
    f"--{BOUNDARY}--",
    "",
    "",
    "",
]).encode("ascii")


def pem_body(path):
    return open(path, "rb").read()


def ed25519_seed_b64(path):
    key = serialization.load_pem_private_key(pem_body(path), password=None)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw)


def sign_optbridge_layout(message, privkey, algorithm):
    """dkimpy's own signing path (DKIM.gen_header, which dkim.sign() calls), with optbridge's tags.

    dkim.sign() always adds i= and q=. Under relaxed canonicalization the tag text is part of what
    is signed, so to compare b= values the tags must be the same; folding may differ as long as it
    only happens at existing whitespace, which is why h= is joined with " : " on both sides.
    """
    d = dkim.DKIM(message, signature_algorithm=algorithm, linesep=b"\r\n")
    if algorithm == b"rsa-sha256":
        pk = dkim.crypto.parse_pem_private_key(privkey)
    else:
        import nacl.encoding
        import nacl.signing
        pk = nacl.signing.SigningKey(privkey, encoder=nacl.encoding.Base64Encoder)
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    d.hasher = dkim.HASH_ALGORITHMS[algorithm]
    present = {name.lower() for name, _ in d.headers}
    include = [h for h in SIGNED if h in present]
    bodyhash = base64.b64encode(d.hasher(policy.canonicalize_body(d.body)).digest())
    fields = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", b"relaxed/relaxed"),
        (b"d", DOMAIN),
        (b"s", SELECTOR),
        (b"t", str(TIMESTAMP).encode()),
        (b"h", b" : ".join(include)),
        (b"bh", bodyhash),
        (b"b", b"0" * 60),
    ]
    return b"DKIM-Signature: " + d.gen_header(fields, include, policy, b"DKIM-Signature", pk)


def sign_dkimpy_default(message, privkey, algorithm):
    """Plain dkim.sign() with its own tag layout (adds i= and q=, h= joined with " : ")."""
    present = {line.split(b":", 1)[0].strip().lower()
               for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
               if line and line[:1] not in b" \t"}
    include = [h for h in SIGNED if h in present]
    dkim.time.time = lambda: TIMESTAMP
    return dkim.sign(message, SELECTOR, DOMAIN, privkey, canonicalize=(b"relaxed", b"relaxed"),
                     signature_algorithm=algorithm, include_headers=include, linesep=b"\r\n")


def main():
    open("invitation.eml", "wb").write(MESSAGE)
    rsa = pem_body("rsa2048.pkcs1.pem")
    ed = ed25519_seed_b64("ed25519.pkcs8.pem")
    for name, key, alg in [("rsa", rsa, b"rsa-sha256"), ("ed25519", ed, b"ed25519-sha256")]:
        ours = sign_optbridge_layout(MESSAGE, key, alg)
        default = sign_dkimpy_default(MESSAGE, key, alg)
        assert re.search(rb"t=%d" % TIMESTAMP, default), default
        open(f"invitation.{name}.dkimpy.txt", "wb").write(ours)
        open(f"invitation.{name}.dkimpy-default.txt", "wb").write(default)


if __name__ == "__main__":
    main()
