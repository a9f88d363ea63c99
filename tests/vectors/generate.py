"""Generate tests/vectors/receipts.json: the shared receipt test vectors (see README.md here).

Deterministic: fixed Ed25519 seeds (sha256 of a label), a fixed clock, and Ed25519 signatures,
which are deterministic. Tokens are built by hand with PyNaCl so that broken ones can be made.
Run: python tests/vectors/generate.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

OUTPUT = Path(__file__).with_name("receipts.json")

ISSUER = "https://trickle.test"
AUDIENCE = "https://blog.example"
ALICE = "https://trickle.test/p/alice"
BOB = "https://trickle.test/p/bob"
NOW = 1795000100
LEEWAY_S = 60
IAT = 1795000000
EXP = 1795000300
TYPE = "trickle-receipt+jwt"
MAX_AMOUNT = 2**63 - 1
MAX_SAFE_INTEGER = 2**53 - 1
MAX_JSON_DEPTH = 32  # docs/receipts.md §2: the top-level object is level 1
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"trickle test vectors: {label}".encode()).digest()


KEY_1 = SigningKey(_seed("test-key-1"))
KEY_2 = SigningKey(_seed("test-key-2"))
OUTSIDER = SigningKey(_seed("test-key-3, not in the JWKS"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk(kid: str, key: SigningKey) -> dict[str, str]:
    x = b64url(bytes(key.verify_key))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


JWKS = {"keys": [jwk("test-key-1", KEY_1), jwk("test-key-2", KEY_2)]}


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def header(**changes: Any) -> dict[str, Any]:
    """The standard header with members changed; a value of ``...`` removes the member."""
    base: dict[str, Any] = {"alg": "EdDSA", "kid": "test-key-1", "typ": TYPE}
    return _apply(base, changes)


def claims(**changes: Any) -> dict[str, Any]:
    """Standard valid claims with members changed; a value of ``...`` removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "pay": ALICE,
        "sid": "sTrEaM0aaaaaaaaaaaaaaA",
        "seq": 1,
        "amt": "100",
        "tot": "100",
        "cur": "USD",
        "scale": 9,
        "iat": IAT,
        "exp": EXP,
        "jti": "rcpt-0001",
    }
    return _apply(base, changes)


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def token(
    head: dict[str, Any] | bytes | None = None,
    body: dict[str, Any] | bytes | None = None,
    *,
    key: SigningKey = KEY_1,
) -> str:
    """A correctly signed token; ``head``/``body`` are a JSON object or raw bytes."""
    head_bytes = head if isinstance(head, bytes) else compact(header() if head is None else head)
    body_bytes = body if isinstance(body, bytes) else compact(claims() if body is None else body)
    signing_input = f"{b64url(head_bytes)}.{b64url(body_bytes)}"
    signature = key.sign(signing_input.encode("ascii")).signature
    return f"{signing_input}.{b64url(signature)}"


def parts(tok: str) -> list[str]:
    return tok.split(".")


def hmac_token(alg: str, secret: bytes) -> str:
    """An HMAC-signed token, as an algorithm-confusion attack with the public key as secret."""
    signing_input = f"{b64url(compact(header(alg=alg)))}.{b64url(compact(claims()))}"
    digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def with_last_char(part: str, char: str) -> str:
    return part[:-1] + char


def nested(levels: int) -> bytes:
    """JSON arrays ``levels`` deep: ``[[...]]``."""
    return b"[" * levels + b"]" * levels


def with_member(value: dict[str, Any], member: bytes) -> bytes:
    """``value`` as compact JSON with one more raw member (``"name":value``) at the end."""
    return compact(value)[:-1] + b"," + member + b"}"


def with_raw_claim(name: str, literal: bytes, **changes: Any) -> bytes:
    """Standard claims (with ``changes``) where claim ``name`` is written as the JSON text
    ``literal`` (``9.0``, ``-0``, ...), which ``json.dumps`` cannot produce."""
    return with_member(claims(**{name: ..., **changes}), f'"{name}":'.encode() + literal)


def sized_token(total_bytes: int) -> str:
    """A validly signed token of exactly ``total_bytes`` bytes (an ignored claim pads it)."""
    for extra_header in range(4):
        for pad in range(total_bytes):
            head = header(**({"x-pad": "h" * extra_header} if extra_header else {}))
            tok = token(head, claims(pad="p" * pad))
            if len(tok) == total_bytes:
                return tok
            if len(tok) > total_bytes:
                break
    raise AssertionError(f"no token of exactly {total_bytes} bytes")


def valid_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        body: dict[str, Any],
        *,
        head: dict[str, Any] | None = None,
        key: SigningKey = KEY_1,
        raw_body: bytes | None = None,
        binding: str | None = None,
        now: int | None = None,
    ) -> None:
        tok = token(head, raw_body if raw_body is not None else body, key=key)
        out.append({"name": name, "token": tok, "binding": binding, "now": now, "claims": body})

    add("basic", claims())
    add("later receipt of a stream", claims(seq=3, amt="333333", tot="1000000", jti="rcpt-0003"))
    add("with bnd, not checked", claims(bnd="session-42"))
    add("with bnd, binding expected and equal", claims(bnd="session-42"), binding="session-42")
    add(
        "bnd of 256 printable ASCII chars",
        claims(bnd=("~ !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}" * 6)[:256]),
    )
    add("one-time payment (otp)", claims(otp=True, amt="5000", tot="5000", sid="oneTime0001"))
    add("otp false", claims(otp=False))
    add(
        "one-time payment with ord and bnd, binding expected",
        claims(
            otp=True,
            amt="250000000",
            tot="250000000",
            sid="Yp0v3mXq8kR2sT1uW9aBcQ",
            jti="f2Kq9vX1c0S7bW1mN8aYzA",
            bnd="visitor-session-7",
            ord="article-42",
        ),
        binding="visitor-session-7",
    )
    add(
        "ord of 128 printable ASCII chars",
        claims(
            otp=True,
            ord=("~ !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}" * 3)[:128],
        ),
    )
    add("ord of 1 char, a space", claims(otp=True, ord=" "))
    add("ord without otp (the verifier does not interpret it)", claims(ord="order-7"))
    add("amount 0", claims(amt="0", tot="0"))
    add("amount 0 with a positive total", claims(seq=2, amt="0", tot="500"))
    add("amount at 2^63-1", claims(amt=str(MAX_AMOUNT), tot=str(MAX_AMOUNT)))
    add("payee bob", claims(pay=BOB))
    add("signed by the second key", claims(), head=header(kid="test-key-2"), key=KEY_2)
    add(
        "unknown claims ignored",
        claims(ext={"nested": [1, 2.5, None, True]}, note="caf\u00e9 \u2603", nbf=1),
    )
    add(
        "extra header members ignored (jku, x5u, cty and others are never used)",
        claims(),
        head=header(jku="https://evil.example/jwks", x5u="https://evil.example/x5u", cty="x", n=1),
    )
    add(
        "header members in another order",
        claims(),
        head={"typ": TYPE, "kid": "test-key-1", "alg": "EdDSA"},
    )
    add(
        "payload with JSON whitespace",
        claims(),
        raw_body=json.dumps(claims(), indent=2).encode("utf-8") + b"\n",
    )
    add("seq at 2^53-1", claims(seq=2**53 - 1))
    add("scale 0", claims(scale=0))
    add("scale 18", claims(scale=18))
    add("cur of 12 chars", claims(cur="ABCDEFGHIJ12"))
    add("sid and jti of 64 chars", claims(sid="s" * 64, jti="J-_9" * 16))
    add("exp exactly at now - leeway", claims(iat=NOW - 200, exp=NOW - LEEWAY_S))
    add("iat exactly at now + leeway", claims(iat=NOW + LEEWAY_S, exp=NOW + 600))
    add("exp one second after iat", claims(iat=NOW, exp=NOW + 1))
    add("verified at its own clock", claims(iat=1900000000, exp=1900000300), now=1900000010)
    add("iat 0, the epoch", claims(iat=0))
    add("exp at 2^53-1", claims(exp=MAX_SAFE_INTEGER))
    add(
        "scale 0 and ids holding -0 (text, not a number)",
        claims(scale=0, sid="s-0-aaaaaaaaaaaaaaaaaaA", jti="r-0"),
    )
    add("iat 0 with -0 inside a string", claims(iat=0, note="-0"))

    # JSON (docs/receipts.md §2): nesting up to the limit, null, escapes, __proto__.
    deepest: list[Any] = [[]]
    for _ in range(MAX_JSON_DEPTH - 3):
        deepest = [deepest]
    add(f"an unknown claim nested to the limit ({MAX_JSON_DEPTH} levels)", claims(deep=deepest))
    add(
        f"an ignored header member nested to the limit ({MAX_JSON_DEPTH} levels)",
        claims(),
        head=header(deep=deepest),
    )
    add(
        "brackets inside strings do not nest",
        claims(note="[" * 100 + "{" * 100, kid_like='\\"[{'),
    )
    add(
        "many sibling arrays, none deep",
        claims(list=[[1], [2], {"a": [3]}] * 20),
    )
    add("an unknown claim null and a null header member", claims(extra=None), head=header(ext=None))
    add(
        "an escaped surrogate pair is one character",
        claims(note="\U0001f600"),
        raw_body=with_member(claims(note=...), b'"note":"\\ud83d\\ude00"'),
    )
    add(
        "an escaped backslash before ud800 is not a surrogate escape",
        claims(note="\\ud800"),
        raw_body=with_member(claims(note=...), b'"note":"\\\\ud800"'),
    )
    add("U+FEFF inside a string is a character", claims(note="\ufeffx"))
    add("an unknown claim named __proto__", claims(__proto__={"iss": "https://evil.example"}))
    sized = sized_token(4096)
    out.append(
        {
            "name": "token of exactly 4096 bytes",
            "token": sized,
            "binding": None,
            "now": None,
            "claims": json.loads(base64.urlsafe_b64decode(parts(sized)[1] + "==")),
        }
    )
    return out


def invalid_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(
        name: str, tok: str, code: str, *, binding: str | None = None, now: int | None = None
    ) -> None:
        out.append({"name": name, "token": tok, "binding": binding, "now": now, "code": code})

    good = token()
    h, p, s = parts(good)
    zero_sig = b64url(bytes(64))

    # Rule 1
    add("token of 4097 bytes, validly signed", sized_token(4097), "token_too_large")
    add(
        "token far over 4096 bytes, validly signed",
        token(body=claims(pad="x" * 6000)),
        "token_too_large",
    )
    add("oversized token that is also malformed", "a" * 5000, "token_too_large")

    # Rule 2
    add("2 parts", f"{h}.{p}", "malformed_jws")
    add("4 parts", f"{h}.{p}.{s}.{s}", "malformed_jws")
    add("empty string", "", "malformed_jws")
    add("empty header part", f".{p}.{s}", "malformed_jws")
    add("empty payload part", f"{h}..{s}", "malformed_jws")
    add("empty signature part", f"{h}.{p}.", "malformed_jws")
    add(
        "alg none with an empty signature",
        f"{b64url(compact(header(alg='none')))}.{p}.",
        "malformed_jws",
    )
    add("illegal base64url char '+' in the payload", f"{h}.{p[:10]}+{p[11:]}.{s}", "malformed_jws")
    add("illegal base64url char '/' in the signature", f"{h}.{p}.{s[:5]}/{s[6:]}", "malformed_jws")
    add("base64 padding '=' on the signature", f"{good}==", "malformed_jws")
    add("padding '=' on the header", f"{h}=.{p}.{s}", "malformed_jws")
    add("whitespace inside the token", f"{h}.{p} .{s}", "malformed_jws")
    add("trailing newline", f"{good}\n", "malformed_jws")
    add("non-ASCII char in the token", f"{h}.{p}\u00e9.{s}", "malformed_jws")
    add("header part of length 1 mod 4", f"{h[: len(h) - len(h) % 4]}A.{p}.{s}", "malformed_jws")
    add(
        "non-canonical trailing bits in the signature",
        f"{h}.{p}.{with_last_char(s, 'B')}",
        "malformed_jws",
    )
    add("signature of 63 bytes", f"{h}.{p}.{b64url(bytes(63))}", "malformed_jws")
    add("signature of 65 bytes", f"{h}.{p}.{b64url(bytes(65))}", "malformed_jws")
    add(
        "HS256 with the public key bytes as HMAC secret (32-byte MAC)",
        hmac_token("HS256", bytes(KEY_1.verify_key)),
        "malformed_jws",
    )
    add(
        "HS256 with the public JWK as HMAC secret (32-byte MAC)",
        hmac_token("HS256", compact(jwk("test-key-1", KEY_1))),
        "malformed_jws",
    )

    # Non-canonical trailing bits in header and payload: find encodings where bits are dropped.
    noncanon = _noncanonical_header_and_payload()
    add("non-canonical trailing bits in the header", noncanon[0], "malformed_jws")
    add("non-canonical trailing bits in the payload", noncanon[1], "malformed_jws")
    add("non-canonical trailing bits in a 3-mod-4 header", noncanon[2], "malformed_jws")
    add("non-canonical trailing bits in a 3-mod-4 payload", noncanon[3], "malformed_jws")
    # The 64-byte signature's last character carries 2 bits; its 4 low bits must be zero, so
    # only 1 of the 16 characters sharing those 2 bits is canonical (jose accepts all 16).
    last = B64URL_ALPHABET.index(s[-1])
    for index in range(last & ~0x0F, (last & ~0x0F) + 16):
        char = B64URL_ALPHABET[index]
        if char != s[-1] and char != "B":
            add(
                f"non-canonical signature: last char {char!r} for {s[-1]!r}",
                f"{h}.{p}.{with_last_char(s, char)}",
                "malformed_jws",
            )
    add("payload part of length 1 mod 4", f"{h}.{p[: len(p) - len(p) % 4]}A.{s}", "malformed_jws")
    add("signature part of length 1 mod 4 (85 chars)", f"{h}.{p}.{s[:85]}", "malformed_jws")
    add("signature part of 87 chars", f"{h}.{p}.{s}A", "malformed_jws")
    add("base64 padding '=' on the payload", f"{h}.{p}=.{s}", "malformed_jws")

    # Rule 3
    add("header not JSON", token(b"alg=EdDSA"), "malformed_header")
    add("header a JSON array", token(compact(["EdDSA", "test-key-1"])), "malformed_header")
    add("header a JSON string", token(compact("EdDSA")), "malformed_header")
    add("header JSON null", token(b"null"), "malformed_header")
    add(
        "header not UTF-8",
        token(b'{"alg":"EdDSA","kid":"test-key-1","typ":"' + b"\xff\xfe" + b'"}'),
        "malformed_header",
    )
    add(
        "duplicate alg in header",
        token(b'{"alg":"none","alg":"EdDSA","kid":"test-key-1","typ":"trickle-receipt+jwt"}'),
        "malformed_header",
    )
    add(
        "duplicate kid in header",
        token(b'{"alg":"EdDSA","kid":"test-key-2","kid":"test-key-1","typ":"trickle-receipt+jwt"}'),
        "malformed_header",
    )
    add("crit present", token(header(crit=["exp"])), "malformed_header")
    add("crit present but empty", token(header(crit=[])), "malformed_header")
    add("header with trailing garbage", token(compact(header()) + b"x"), "malformed_header")
    add("crit null (present)", token(header(crit=None)), "malformed_header")
    add(
        "duplicate typ in header, equal values",
        token(with_member(header(), b'"typ":"trickle-receipt+jwt"')),
        "malformed_header",
    )
    add(
        "duplicate member inside an ignored header member",
        token(with_member(header(), b'"x":{"a":1,"a":1}')),
        "malformed_header",
    )
    add(
        "duplicate kid in header, spelled with an escape",
        token(with_member(header(), b'"\\u006bid":"test-key-1"')),
        "malformed_header",
    )
    add(
        "header starting with a UTF-8 BOM",
        token(b"\xef\xbb\xbf" + compact(header())),
        "malformed_header",
    )
    add(
        f"header nested {MAX_JSON_DEPTH + 1} levels (an ignored member {MAX_JSON_DEPTH} deep)",
        token(with_member(header(), b'"deep":' + nested(MAX_JSON_DEPTH))),
        "malformed_header",
    )
    add(
        "header nested 1000 levels in an ignored member",
        token(with_member(header(), b'"deep":' + nested(1000))),
        "malformed_header",
    )
    add(
        "lone surrogate escape in an ignored header member",
        token(with_member(header(), b'"x":"\\udfff"')),
        "malformed_header",
    )

    # Rule 4
    add(
        "alg none with a 64-byte signature",
        f"{b64url(compact(header(alg='none')))}.{p}.{zero_sig}",
        "unsupported_algorithm",
    )
    add("alg none, signed", token(header(alg="none")), "unsupported_algorithm")
    add(
        "HS512 with the public key bytes as HMAC secret (64-byte MAC)",
        hmac_token("HS512", bytes(KEY_1.verify_key)),
        "unsupported_algorithm",
    )
    add(
        "HS512 with the public JWK x as HMAC secret",
        hmac_token("HS512", jwk("test-key-1", KEY_1)["x"].encode()),
        "unsupported_algorithm",
    )
    add("alg eddsa lowercase", token(header(alg="eddsa")), "unsupported_algorithm")
    add("alg Ed25519", token(header(alg="Ed25519")), "unsupported_algorithm")
    add("alg ES256", token(header(alg="ES256")), "unsupported_algorithm")
    add("alg missing", token(header(alg=...)), "unsupported_algorithm")
    add("alg an array", token(header(alg=["EdDSA"])), "unsupported_algorithm")
    add("alg null", token(header(alg=None)), "unsupported_algorithm")

    # Rule 5
    add("kid a path", token(header(kid="../../etc/passwd")), "invalid_kid")
    add("kid a URL", token(header(kid="https://evil.example/jwks")), "invalid_kid")
    add("kid empty", token(header(kid="")), "invalid_kid")
    add("kid a number", token(header(kid=1)), "invalid_kid")
    add("kid null", token(header(kid=None)), "invalid_kid")
    add("kid missing", token(header(kid=...)), "invalid_kid")
    add("kid of 65 chars", token(header(kid="k" * 65)), "invalid_kid")
    add("kid with a trailing newline", token(header(kid="test-key-1\n")), "invalid_kid")
    add("kid with a space", token(header(kid="test key 1")), "invalid_kid")

    # Rule 6
    add(
        "unknown kid (key not in the JWKS)",
        token(header(kid="test-key-3"), key=OUTSIDER),
        "unknown_kid",
    )
    add("unknown kid differing in case", token(header(kid="TEST-KEY-1")), "unknown_kid")

    # Rule 7
    add("signed by another key with the same kid", token(key=OUTSIDER), "bad_signature")
    add("signed by test-key-2 under kid test-key-1", token(key=KEY_2), "bad_signature")
    add("all-zero signature", f"{h}.{p}.{zero_sig}", "bad_signature")
    tampered = b64url(compact(claims(amt="100000", tot="100000")))
    add("amount tampered after signing", f"{h}.{tampered}.{s}", "bad_signature")
    add(
        "header tampered after signing",
        f"{b64url(compact(header(typ='JWT')))}.{p}.{s}",
        "bad_signature",
    )
    add(
        "signature of another token",
        f"{h}.{p}.{parts(token(body=claims(seq=2)))[2]}",
        "bad_signature",
    )

    # Rule 8
    add("typ JWT", token(header(typ="JWT")), "wrong_type")
    add("typ missing", token(header(typ=...)), "wrong_type")
    add("typ in another case", token(header(typ="Trickle-Receipt+JWT")), "wrong_type")
    add("typ without +jwt", token(header(typ="trickle-receipt")), "wrong_type")
    add("typ null", token(header(typ=None)), "wrong_type")

    # Rule 9
    add("payload not JSON", token(body=b"iss=https://trickle.test"), "malformed_payload")
    add("payload a JSON array", token(body=compact([claims()])), "malformed_payload")
    add("payload a JSON string", token(body=compact("receipt")), "malformed_payload")
    add("payload a JSON number", token(body=b"100"), "malformed_payload")
    add("payload JSON null", token(body=b"null"), "malformed_payload")
    add(
        "payload not UTF-8",
        token(body=compact(claims())[:-1] + b',"x":"\xc3\x28"}'),
        "malformed_payload",
    )
    add("payload truncated JSON", token(body=compact(claims())[:-1]), "malformed_payload")
    add("payload with trailing garbage", token(body=compact(claims()) + b"{}"), "malformed_payload")
    add("payload with NaN", token(body=compact(claims())[:-1] + b',"x":NaN}'), "malformed_payload")
    body = compact(claims(tot="100000"))
    add(
        "duplicate tot claim",
        token(body=body[:-1] + b',"tot":"100"}'),
        "malformed_payload",
    )
    add(
        "duplicate member in a nested object",
        token(body=compact(claims())[:-1] + b',"ext":{"a":1,"a":2}}'),
        "malformed_payload",
    )
    add(
        "duplicate tot spelled with an escape",
        token(body=with_member(claims(), b'"t\\u006ft":"100000"')),
        "malformed_payload",
    )
    add(
        "duplicate unknown claim, equal values",
        token(body=with_member(claims(x=1), b'"x":1')),
        "malformed_payload",
    )
    add(
        "duplicate member in an object inside arrays",
        token(body=with_member(claims(), b'"x":[[{"a":[{"b":1,"b":1}]}]]')),
        "malformed_payload",
    )
    add(
        "duplicate __proto__ claim",
        token(body=with_member(claims(__proto__={}), b'"__proto__":{}')),
        "malformed_payload",
    )
    add(
        "payload starting with a UTF-8 BOM",
        token(body=b"\xef\xbb\xbf" + compact(claims())),
        "malformed_payload",
    )
    add(
        f"payload nested {MAX_JSON_DEPTH + 1} levels (an unknown claim {MAX_JSON_DEPTH} deep)",
        token(body=with_member(claims(), b'"deep":' + nested(MAX_JSON_DEPTH))),
        "malformed_payload",
    )
    add(
        f"payload nested {MAX_JSON_DEPTH + 1} levels of objects and arrays",
        token(body=with_member(claims(), b'"deep":' + b'{"a":[' * 16 + b"]}" * 16)),
        "malformed_payload",
    )
    add(
        "payload nested 1000 levels in an unknown claim",
        token(body=with_member(claims(), b'"deep":' + nested(1000))),
        "malformed_payload",
    )
    add(
        "lone high surrogate escape in an unknown claim",
        token(body=with_member(claims(), b'"x":"a\\ud800b"')),
        "malformed_payload",
    )
    add(
        "lone low surrogate escape in an unknown claim",
        token(body=with_member(claims(), b'"x":"\\udc00"')),
        "malformed_payload",
    )
    add(
        "surrogate escapes in the wrong order (low, high)",
        token(body=with_member(claims(), b'"x":"\\udc00\\ud800"')),
        "malformed_payload",
    )
    add(
        "high surrogate escape followed by a non-surrogate escape",
        token(body=with_member(claims(), b'"x":"\\ud800\\u0041"')),
        "malformed_payload",
    )
    add(
        "lone surrogate escape in a member name",
        token(body=with_member(claims(), b'"\\ud800":1')),
        "malformed_payload",
    )
    add(
        "lone surrogate after an escaped backslash",
        token(body=with_member(claims(), b'"x":"\\\\\\ud800"')),
        "malformed_payload",
    )
    add(
        "a UTF-8 encoded surrogate (CESU-8) in a string",
        token(body=with_member(claims(), b'"x":"\xed\xa0\x80"')),
        "malformed_payload",
    )
    add(
        "an overlong UTF-8 encoding in a string",
        token(body=with_member(claims(), b'"x":"\xc0\xaf"')),
        "malformed_payload",
    )
    add(
        "scale with a leading zero (not JSON)",
        token(body=with_raw_claim("scale", b"09")),
        "malformed_payload",
    )
    add(
        "scale with a plus sign (not JSON)",
        token(body=with_raw_claim("scale", b"+9")),
        "malformed_payload",
    )

    # Rule 10
    for name in (
        "iss",
        "aud",
        "pay",
        "sid",
        "seq",
        "amt",
        "tot",
        "cur",
        "scale",
        "iat",
        "exp",
        "jti",
    ):
        add(f"missing {name}", token(body=claims(**{name: ...})), "missing_claim")

    # Rule 11
    bad_claims: list[tuple[str, dict[str, Any]]] = [
        ("iss a number", {"iss": 1}),
        ("aud null", {"aud": None}),
        ("pay an array", {"pay": [ALICE]}),
        ("seq 0", {"seq": 0}),
        ("seq negative", {"seq": -1}),
        ("seq a float 1.5", {"seq": 1.5}),
        ("seq a float 1.0", {"seq": 1.0}),
        ("seq a string", {"seq": "1"}),
        ("seq a boolean", {"seq": True}),
        ("seq 2^53", {"seq": 2**53}),
        ("scale negative", {"scale": -1}),
        ("scale 19", {"scale": 19}),
        ("scale a string", {"scale": "9"}),
        ("sid with illegal chars", {"sid": "abc/def"}),
        ("sid with a dot", {"sid": "abc.def"}),
        ("sid empty", {"sid": ""}),
        ("sid of 65 chars", {"sid": "s" * 65}),
        ("sid a number", {"sid": 12345}),
        ("jti with a space", {"jti": "rcpt 1"}),
        ("cur lowercase", {"cur": "usd"}),
        ("cur of 2 chars", {"cur": "US"}),
        ("cur of 13 chars", {"cur": "ABCDEFGHIJKLM"}),
        ("iat a float", {"iat": 1795000000.5}),
        ("iat a string", {"iat": "1795000000"}),
        ("exp a float", {"exp": 1795000300.0}),
        ("exp null", {"exp": None}),
        ("exp 2^53", {"exp": 2**53}),
        ("iat negative", {"iat": -1}),
        ("iat and exp negative", {"iat": -600, "exp": -300}),
        ("iat 2^53", {"iat": 2**53, "exp": 2**53 + 300}),
        ("iss null", {"iss": None}),
        ("sid null", {"sid": None}),
        ("seq null", {"seq": None}),
        ("cur null", {"cur": None}),
        ("scale null", {"scale": None}),
        ("iat null", {"iat": None}),
        ("jti null", {"jti": None}),
        ("bnd null", {"bnd": None}),
        ("exp equal to iat", {"exp": IAT}),
        ("exp before iat", {"exp": IAT - 1}),
        ("bnd empty", {"bnd": ""}),
        ("bnd with a newline", {"bnd": "session\n42"}),
        ("bnd with a non-ASCII char", {"bnd": "s\u00e9ssion"}),
        ("bnd of 257 chars", {"bnd": "b" * 257}),
        ("bnd a number", {"bnd": 42}),
        ("otp a string", {"otp": "true"}),
        ("otp a number", {"otp": 1}),
        ("otp true with amt != tot", {"otp": True, "amt": "100", "tot": "200"}),
        ("otp true with seq 2", {"otp": True, "seq": 2}),
        ("otp null", {"otp": None}),
        ("otp true with amt a number equal to tot", {"otp": True, "amt": 100, "tot": "100"}),
        ("otp true with seq 2 and ord", {"otp": True, "seq": 2, "ord": "article-42"}),
        ("ord a number", {"otp": True, "ord": 42}),
        ("ord null", {"otp": True, "ord": None}),
        ("ord an array", {"otp": True, "ord": ["article-42"]}),
        ("ord empty", {"otp": True, "ord": ""}),
        ("ord of 129 chars", {"otp": True, "ord": "o" * 129}),
        ("ord with a newline", {"otp": True, "ord": "article\n42"}),
        ("ord with a tab", {"otp": True, "ord": "article\t42"}),
        ("ord with DEL", {"otp": True, "ord": "article\x7f42"}),
        ("ord with a non-ASCII char", {"otp": True, "ord": "artic\u00e9-42"}),
        ("ord with a NUL", {"otp": True, "ord": "article\u000042"}),
    ]
    for name, changes in bad_claims:
        add(name, token(body=claims(**changes)), "invalid_claim")
    # Integers are written 0 or [1-9][0-9]*: no fraction, exponent or sign, and -0 is not 0.
    raw_integers: list[tuple[str, str, bytes]] = [
        ("scale", "9.0", b"9.0"),
        ("scale", "9e0", b"9e0"),
        ("scale", "9E0", b"9E0"),
        ("scale", "0.9e1", b"0.9e1"),
        ("scale", "90e-1", b"90e-1"),
        ("scale", "-0", b"-0"),
        ("scale", "-0.0", b"-0.0"),
        ("scale", "0e0", b"0e0"),
        ("seq", "1e0", b"1e0"),
        ("seq", "-0", b"-0"),
        ("iat", "-0", b"-0"),
        ("iat", "0.0", b"0.0"),
        ("exp", "1795000300e0", b"1795000300e0"),
        ("exp", "1e400 (infinite as a float)", b"1e400"),
    ]
    for name, spelling, literal in raw_integers:
        add(
            f"{name} written {spelling}", token(body=with_raw_claim(name, literal)), "invalid_claim"
        )

    # Rules 12-14
    add("wrong iss", token(body=claims(iss="https://evil.example")), "wrong_issuer")
    add("iss with a trailing slash", token(body=claims(iss=ISSUER + "/")), "wrong_issuer")
    add("iss in upper case", token(body=claims(iss=ISSUER.upper())), "wrong_issuer")
    add("wrong aud", token(body=claims(aud="https://other.example")), "wrong_audience")
    add(
        "aud in upper case (the service signs lower case)",
        token(body=claims(aud=AUDIENCE.upper())),
        "wrong_audience",
    )
    add("aud with a trailing slash", token(body=claims(aud=AUDIENCE + "/")), "wrong_audience")
    add("aud with a path", token(body=claims(aud=AUDIENCE + "/post/1")), "wrong_audience")
    add("aud over http", token(body=claims(aud="http://blog.example")), "wrong_audience")
    add("aud with a default port", token(body=claims(aud=AUDIENCE + ":443")), "wrong_audience")
    add("wrong pay", token(body=claims(pay="https://trickle.test/p/mallory")), "wrong_payee")
    add("pay with a trailing slash", token(body=claims(pay=ALICE + "/")), "wrong_payee")

    # Rules 15-16
    add("expired", token(body=claims(iat=NOW - 600, exp=NOW - 300)), "expired")
    add(
        "expired one second past the leeway",
        token(body=claims(iat=NOW - 600, exp=NOW - LEEWAY_S - 1)),
        "expired",
    )
    add("expired at the vector's own clock", token(), "expired", now=EXP + LEEWAY_S + 1)
    add(
        "iat far in the future",
        token(body=claims(iat=NOW + 86400, exp=NOW + 86700)),
        "not_yet_valid",
    )
    add(
        "iat one second past the leeway",
        token(body=claims(iat=NOW + LEEWAY_S + 1, exp=NOW + 600)),
        "not_yet_valid",
    )

    # Rule 17
    bad_amounts: list[tuple[str, dict[str, Any]]] = [
        ("amt a float 1.5", {"amt": 1.5}),
        ("amt a float 1.0", {"amt": 1.0}),
        ("amt an integer JSON number", {"amt": 100}),
        ("amt null", {"amt": None}),
        ("tot null", {"tot": None}),
        ("amt with a leading zero", {"amt": "0100"}),
        ("amt 00", {"amt": "00"}),
        ("amt +1", {"amt": "+1"}),
        ("amt -1", {"amt": "-1"}),
        ("amt with a leading space", {"amt": " 1"}),
        ("amt with a trailing newline", {"amt": "1\n"}),
        ("amt 1e3", {"amt": "1e3"}),
        ("amt 1.5 as a string", {"amt": "1.5"}),
        ("amt empty", {"amt": ""}),
        ("amt with an underscore", {"amt": "1_000"}),
        ("amt with non-ASCII digits", {"amt": "\u0661\u0660\u0660"}),
        ("amt 2^63", {"amt": str(2**63), "tot": str(2**63)}),
        ("amt far over 2^63", {"amt": "9" * 40, "tot": "9" * 40}),
        ("tot with a leading zero", {"tot": "0100"}),
        ("tot an integer JSON number", {"tot": 100}),
        ("tot 2^63", {"tot": str(2**63)}),
    ]
    for name, changes in bad_amounts:
        add(name, token(body=claims(**changes)), "invalid_amount")

    # Rule 18
    add("tot below amt", token(body=claims(amt="100", tot="99")), "total_below_amount")
    add("tot 0 below amt 1", token(body=claims(amt="1", tot="0")), "total_below_amount")

    # Rule 19
    add("binding expected, bnd missing", token(), "binding_mismatch", binding="session-42")
    add(
        "binding expected, bnd different",
        token(body=claims(bnd="session-43")),
        "binding_mismatch",
        binding="session-42",
    )
    add(
        "binding expected, bnd in another case",
        token(body=claims(bnd="SESSION-42")),
        "binding_mismatch",
        binding="session-42",
    )

    # Rule order: each token breaks two rules; the earlier one is reported.
    add("order: oversized beats malformed", "." * 4097, "token_too_large")
    add(
        "order: malformed base64 beats a bad header",
        f"{b64url(b'not json')}.{p}=.{s}",
        "malformed_jws",
    )
    add("order: crit beats a wrong alg", token(header(alg="HS256", crit=["x"])), "malformed_header")
    add(
        "order: wrong alg beats an invalid kid",
        token(header(alg="none", kid="../x")),
        "unsupported_algorithm",
    )
    add("order: invalid kid beats a wrong typ", token(header(kid="a/b", typ="JWT")), "invalid_kid")
    add(
        "order: a too-deep header beats an unknown kid",
        token(with_member(header(kid="nope"), b'"deep":' + nested(MAX_JSON_DEPTH))),
        "malformed_header",
    )
    too_deep = b64url(with_member(claims(), b'"deep":' + nested(1000)))
    add("order: bad signature beats a too-deep payload", f"{h}.{too_deep}.{s}", "bad_signature")
    add(
        "order: wrong typ beats a lone surrogate in the payload",
        token(header(typ="JWT"), with_member(claims(), b'"x":"\\ud800"')),
        "wrong_type",
    )
    add(
        "order: unknown kid beats a bad signature",
        f"{b64url(compact(header(kid='nope')))}.{p}.{zero_sig}",
        "unknown_kid",
    )
    add(
        "order: bad signature beats a wrong typ",
        token(header(typ="JWT"), key=OUTSIDER),
        "bad_signature",
    )
    add(
        "order: bad signature beats a malformed payload",
        f"{h}.{b64url(b'[1]')}.{s}",
        "bad_signature",
    )
    add(
        "order: wrong typ beats a malformed payload", token(header(typ="JWT"), b"[1]"), "wrong_type"
    )
    add(
        "order: missing claim beats an invalid claim",
        token(body=claims(iss=..., seq=0)),
        "missing_claim",
    )
    add(
        "order: invalid claim beats a wrong issuer",
        token(body=claims(iss="https://evil.example", seq=0)),
        "invalid_claim",
    )
    add(
        "order: an invalid ord beats a wrong audience",
        token(body=claims(aud="https://other.example", otp=True, ord="")),
        "invalid_claim",
    )
    add(
        "order: otp with equal amounts as JSON numbers passes rule 11, then invalid amount",
        token(body=claims(otp=True, amt=100, tot=100, ord="article-42")),
        "invalid_amount",
    )
    add(
        "order: wrong issuer beats a wrong audience",
        token(body=claims(iss="x", aud="y")),
        "wrong_issuer",
    )
    add(
        "order: wrong audience beats a wrong payee",
        token(body=claims(aud="y", pay="z")),
        "wrong_audience",
    )
    add(
        "order: wrong payee beats expired", token(body=claims(pay="z", iat=1, exp=2)), "wrong_payee"
    )
    add(
        "order: expired beats an invalid amount",
        token(body=claims(iat=1, exp=2, amt=1.5)),
        "expired",
    )
    add(
        "order: not yet valid beats an invalid amount",
        token(body=claims(iat=NOW + 999, exp=NOW + 9999, amt="01")),
        "not_yet_valid",
    )
    add(
        "order: invalid amount beats tot below amt",
        token(body=claims(amt="200", tot="0100")),
        "invalid_amount",
    )
    add(
        "order: tot below amt beats a binding mismatch",
        token(body=claims(amt="2", tot="1")),
        "total_below_amount",
        binding="b",
    )
    return out


def _noncanonical_header_and_payload() -> tuple[str, str, str, str]:
    """Tokens whose header, then payload, encoding sets bits past the last byte: first with
    whichever of the lengths 2 or 3 mod 4 comes first, then with the other one."""
    found: dict[tuple[int, int], str] = {}
    for target in (0, 1):
        for pad in range(8):
            head = header(**({"x": "x" * pad} if target == 0 else {}))
            body = claims(**({"x": "x" * pad} if target == 1 else {}))
            segments = parts(token(head, body))
            segment = segments[target]
            remainder = len(segment) % 4
            if remainder in (2, 3) and (target, remainder) not in found:
                # Bump the last char by one: decodes to the same bytes, different text.
                next_char = B64URL_ALPHABET[B64URL_ALPHABET.index(segment[-1]) + 1]
                segments[target] = with_last_char(segment, next_char)
                found[(target, remainder)] = ".".join(segments)
    first = [next(tok for (t, _), tok in found.items() if t == target) for target in (0, 1)]
    other = [
        next(tok for (t, _), tok in reversed(found.items()) if t == target) for target in (0, 1)
    ]
    return first[0], first[1], other[0], other[1]


def credit_vectors() -> list[dict[str, Any]]:
    def step(sid: str, seq: int, tot: int, credited: int, **extra: Any) -> dict[str, str]:
        body = claims(
            sid=sid,
            seq=seq,
            amt=str(extra.pop("amt", 100)),
            tot=str(tot),
            jti=f"{sid}-{seq}",
            **extra,
        )
        return {"token": token(body=body), "credited": str(credited)}

    example = "docsExampleStreamS"
    other = "secondStreamT"
    return [
        {
            "name": "docs/receipts.md section 4 example",
            "steps": [
                step(example, 1, 100, 100),
                step(example, 2, 200, 100),
                step(example, 2, 200, 0),
                step(example, 4, 400, 200),
                step(example, 3, 300, 0),
            ],
        },
        {
            "name": "two streams interleaved",
            "steps": [
                step(example, 1, 100, 100),
                step(other, 1, 50, 50, amt=50),
                step(example, 2, 200, 100),
                step(other, 3, 150, 100, amt=50),
                step(other, 2, 100, 0, amt=50),
                step(example, 2, 200, 0),
                step(other, 4, 200, 50, amt=50),
                step(example, 5, 500, 300),
            ],
        },
        {
            "name": "one-time payment credited once",
            "steps": [
                step("otpStream1", 1, 5000, 5000, amt=5000, otp=True),
                step("otpStream1", 1, 5000, 0, amt=5000, otp=True),
            ],
        },
        {
            "name": "one-time payments with ord: each sid credited once",
            "steps": [
                step("otpOrderA", 1, 250, 250, amt=250, otp=True, ord="article-42"),
                step("otpOrderB", 1, 250, 250, amt=250, otp=True, ord="article-42"),
                step("otpOrderA", 1, 250, 0, amt=250, otp=True, ord="article-42"),
            ],
        },
        {
            "name": "amounts near 2^63",
            "steps": [
                step("bigStream", 1, MAX_AMOUNT - 1, MAX_AMOUNT - 1, amt=MAX_AMOUNT - 1),
                step("bigStream", 2, MAX_AMOUNT, 1, amt=1),
                step("bigStream", 1, MAX_AMOUNT - 1, 0, amt=MAX_AMOUNT - 1),
            ],
        },
    ]


# (name, what a site configures as audience or issuer, the origin the verifier compares with, or
# None when the verifier must refuse it at construction). docs/receipts.md §3.1.
ORIGIN_CASES: list[tuple[str, str, str | None]] = [
    ("already normal", "https://blog.example", "https://blog.example"),
    ("a trailing slash", "https://blog.example/", "https://blog.example"),
    ("upper-case scheme and host", "HTTPS://Blog.EXAMPLE", "https://blog.example"),
    ("the default https port", "https://blog.example:443", "https://blog.example"),
    ("the default port and a slash", "https://blog.example:443/", "https://blog.example"),
    ("the default http port", "http://blog.example:80", "http://blog.example"),
    ("another port", "https://blog.example:8443", "https://blog.example:8443"),
    ("443 is not the http default", "http://blog.example:443", "http://blog.example:443"),
    ("a port with a leading zero", "https://blog.example:08443", "https://blog.example:8443"),
    ("an empty port", "https://blog.example:", "https://blog.example"),
    ("an empty query and fragment", "https://blog.example/?#", "https://blog.example"),
    ("an IPv4 address and port", "http://127.0.0.1:8420", "http://127.0.0.1:8420"),
    ("localhost with a slash", "http://localhost:3000/", "http://localhost:3000"),
    ("an IPv6 address", "http://[::1]:8080", "http://[::1]:8080"),
    ("an IPv6 address, upper case", "https://[2001:DB8::1]", "https://[2001:db8::1]"),
    ("an IPv6 address with an IPv4 tail", "https://[::ffff:1.2.3.4]", "https://[::ffff:1.2.3.4]"),
    ("an underscore in a label", "https://my_site.example", "https://my_site.example"),
    ("an IDN in its ASCII form", "https://xn--caf-dma.example", "https://xn--caf-dma.example"),
    ("a path", "https://blog.example/post/1", None),
    ("two slashes", "https://blog.example//", None),
    ("a query", "https://blog.example?x=1", None),
    ("a fragment", "https://blog.example#top", None),
    ("credentials", "https://user:pass@blog.example", None),
    ("a user name", "https://user@blog.example", None),
    ("another scheme", "ftp://blog.example", None),
    ("no scheme", "blog.example", None),
    ("a scheme-relative URL", "//blog.example", None),
    ("one slash", "https:/blog.example", None),
    ("no host", "https://", None),
    ("port 0", "https://blog.example:0", None),
    ("port 65536", "https://blog.example:65536", None),
    ("a port that is not a number", "https://blog.example:https", None),
    ("a signed port", "https://blog.example:+443", None),
    ("a leading space", " https://blog.example", None),
    ("a trailing newline", "https://blog.example\n", None),
    ("a non-ASCII host", "https://caf\u00e9.example", None),
    ("a Kelvin sign that folds to k", "https://\u212a.example", None),
    ("an empty label", "https://blog..example", None),
    ("a trailing dot", "https://blog.example.", None),
    ("a label starting with a hyphen", "https://-blog.example", None),
    ("a label of 64 chars", f"https://{'a' * 64}.example", None),
    ("an IPv4 address of 3 parts", "https://1.2.3", None),
    ("an IPv4 part over 255", "https://256.1.1.1", None),
    ("an IPv4 part with a leading zero", "https://01.2.3.4", None),
    ("an unclosed IPv6 bracket", "https://[::1", None),
    ("an IPv6 address with a bad group", "https://[g::1]", None),
    ("an IPv6 address of one colon", "https://[:]", None),
    ("an IPv6 zone id", "https://[fe80::1%25eth0]", None),
    ("the opaque origin", "null", None),
    ("a wildcard", "*", None),
    ("over 300 chars", f"https://{'a.' * 150}example", None),
]


def origin_vectors() -> list[dict[str, Any]]:
    """Configured origins; an accepted one comes with a token whose ``iss`` and ``aud`` are the
    normal form, which a verifier configured with the raw text as issuer and audience accepts."""
    out: list[dict[str, Any]] = []
    for name, configured, origin in ORIGIN_CASES:
        signed = None if origin is None else token(body=claims(iss=origin, aud=origin))
        out.append({"name": name, "configured": configured, "origin": origin, "token": signed})
    return out


def build() -> dict[str, Any]:
    return {
        "verifier": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "payees": [ALICE, BOB],
            "now": NOW,
            "leeway_s": LEEWAY_S,
        },
        "jwks": JWKS,
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
        "credit": credit_vectors(),
        "origins": origin_vectors(),
    }


def render() -> str:
    """The exact text of receipts.json."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def main() -> int:
    text = render()
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    data = json.loads(text)
    print(
        f"wrote {OUTPUT}: {len(data['valid'])} valid, {len(data['invalid'])} invalid, "
        f"{len(data['credit'])} credit sequences, {len(data['origins'])} configured origins"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
