"""WeCom callback crypto: signature, AES-256-CBC envelope, receive-id check (wecom-api.md §1.4).

The cipher is wechatpy's (``PrpCrypto``, checked against Tencent's test vectors); the
signature is computed here so that it is compared in constant time. Both directions live
here because the fake WeCom plays the other side with the same scheme.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from wechatpy.enterprise.crypto import PrpCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException


class CryptoError(Exception):
    """The payload could not be decrypted (bad base64, bad padding, not UTF-8)."""


class SignatureError(CryptoError):
    """``msg_signature`` does not match: the request is not from WeCom (HTTP 403)."""


class ReceiveIdError(CryptoError):
    """The decrypted receive id is not our corp id: meant for someone else (HTTP 403)."""


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """``sha1`` of the four values sorted as strings and concatenated, lowercase hex."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def aes_key_ok(encoding_aes_key: str) -> bool:
    """43 characters that decode (with one ``=``) to a 32-byte AES key."""
    if len(encoding_aes_key) != 43:
        return False
    try:
        return len(base64.b64decode(encoding_aes_key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class CallbackCrypto:
    """One app's callback crypto: ``token``, ``EncodingAESKey`` and the corp id it receives for."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not aes_key_ok(encoding_aes_key):
            raise ValueError("EncodingAESKey must be 43 characters of base64 (a 32-byte key)")
        self.token = token
        self.receive_id = receive_id
        self._prp = PrpCrypto(base64.b64decode(encoding_aes_key + "="))

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypted)
        # As bytes: compare_digest raises TypeError on a str with non-ASCII characters, and a
        # forged signature may carry any (that was a 500 instead of a 403).
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise SignatureError("msg_signature mismatch")

    def decrypt(self, encrypted: str) -> str:
        """The plaintext inside ``encrypted``; raises if the receive id is not ours."""
        try:
            return str(self._prp.decrypt(encrypted, self.receive_id))
        except InvalidCorpIdException:
            raise ReceiveIdError("receive id does not match corp_id") from None
        except Exception as exc:  # wechatpy raises whatever the bytes provoke
            raise CryptoError(f"cannot decrypt: {type(exc).__name__}") from None

    def verify_and_decrypt(
        self, msg_signature: str, timestamp: str, nonce: str, encrypted: str
    ) -> str:
        """Signature first (nothing is trusted before it), then the plaintext."""
        self.check(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def encrypt(self, plaintext: str) -> str:
        return str(self._prp.encrypt(plaintext, self.receive_id).decode("ascii"))

    def envelope(self, plaintext: str, *, timestamp: str, nonce: str | None = None) -> str:
        """The encrypted, signed reply XML WeCom expects (wecom-api.md §1.4 "Reply")."""
        nonce = nonce or str(secrets.randbelow(10**10))
        encrypted = self.encrypt(plaintext)
        sig = signature(self.token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)
