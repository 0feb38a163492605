"""Keys, JWKS documents and tokens for tests/auth_keys.rs, made with PyJWT and
cryptography: an implementation independent of the server's (Rust
jsonwebtoken), so the tests check interoperability, not one library against
itself.

  jwt_tool.py keygen DIR NAME rsa|ec|ed   DIR/NAME.key (PKCS#8), DIR/NAME.pub (SPKI PEM)
  jwt_tool.py jwks OUT KID=PUBFILE...      a JWKS of those public keys to OUT
  jwt_tool.py token KEYFILE ALG CLAIMS [KID]
      prints a token; CLAIMS is JSON, where "exp_in"/"nbf_in" are seconds
      from now (made into exp/nbf); KEYFILE "-" with ALG HS256 signs with
      the secret in $SECRET
"""
import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def keygen(directory, name, kind):
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ed":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        sys.exit(f"unknown key kind {kind!r}")
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(os.path.join(directory, name + ".key"), "wb") as f:
        f.write(private)
    with open(os.path.join(directory, name + ".pub"), "wb") as f:
        f.write(public)


def to_jwk(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public_key, as_dict=True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public_key, as_dict=True)
    return OKPAlgorithm.to_jwk(public_key, as_dict=True)


def jwks(out, specs):
    keys = []
    for spec in specs:
        kid, path = spec.split("=", 1)
        with open(path, "rb") as f:
            public_key = serialization.load_pem_public_key(f.read())
        jwk = to_jwk(public_key)
        jwk["kid"] = kid
        jwk["use"] = "sig"
        keys.append(jwk)
    # Written whole and renamed into place, as a key rotation job should.
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"keys": keys}, f, indent=1)
    os.replace(tmp, out)


def token(keyfile, alg, claims_json, kid=None):
    claims = json.loads(claims_json)
    now = int(time.time())
    for rel, absolute in (("exp_in", "exp"), ("nbf_in", "nbf")):
        if rel in claims:
            claims[absolute] = now + int(claims.pop(rel))
    headers = {"kid": kid} if kid else None
    if keyfile == "-":
        key = os.environ["SECRET"]
    else:
        with open(keyfile, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    print(jwt.encode(claims, key, algorithm=alg, headers=headers))


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "keygen":
        keygen(*args)
    elif command == "jwks":
        jwks(args[0], args[1:])
    elif command == "token":
        token(*args)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
