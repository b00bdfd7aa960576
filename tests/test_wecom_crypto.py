"""Callback crypto and XML: Tencent's official test vectors, and what must be refused."""

from __future__ import annotations

import pytest

from bot.channels.wecom.crypto import (
    CallbackCrypto,
    CryptoError,
    ReceiveIdError,
    SignatureError,
    aes_key_ok,
    signature,
)
from bot.channels.wecom.protocol import (
    MalformedError,
    cdata,
    message_xml,
    parse_callback,
    parse_envelope,
    text_reply_xml,
)

# wecom-api.md §1.7 (official sample callback_python3/Sample.py@db49731)
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
GET = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
POST = {
    "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    "timestamp": "1476422779",
    "nonce": "1597212914",
    "encrypt": (
        "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTk"
        "AgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U"
        "+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4"
        "iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOY"
        "uPDGOCI8jmnKiypE+"
    ),
}
POST_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
)


@pytest.fixture
def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, AES_KEY, CORP_ID)


def test_official_url_verification_vector(crypto):
    assert signature(TOKEN, GET["timestamp"], GET["nonce"], GET["echostr"]) == GET["msg_signature"]
    plain = crypto.verify_and_decrypt(
        GET["msg_signature"], GET["timestamp"], GET["nonce"], GET["echostr"]
    )
    assert plain == "1288432023552776189"


def test_official_message_vector_decrypts_and_parses(crypto):
    plain = crypto.verify_and_decrypt(
        POST["msg_signature"], POST["timestamp"], POST["nonce"], POST["encrypt"]
    )
    assert plain == POST_PLAIN
    msg = parse_callback(plain)
    assert (msg.msg_type, msg.from_user, msg.content, msg.msg_id) == (
        "text",
        "ChenJiaShun",
        "你好",
        "1456453720",
    )
    assert msg.dedupe_key == "msg:1456453720"


def test_a_wrong_signature_is_refused_before_decrypting(crypto):
    with pytest.raises(SignatureError):
        crypto.verify_and_decrypt("0" * 40, POST["timestamp"], POST["nonce"], POST["encrypt"])
    with pytest.raises(SignatureError):  # a changed nonce breaks the signature too
        crypto.verify_and_decrypt(POST["msg_signature"], POST["timestamp"], "1", POST["encrypt"])


def test_another_corps_message_is_refused(crypto):
    other = CallbackCrypto(TOKEN, AES_KEY, "wwsomeoneelse")
    encrypted = other.encrypt(POST_PLAIN)
    sig = other.sign("1", "2", encrypted)
    with pytest.raises(ReceiveIdError):
        crypto.verify_and_decrypt(sig, "1", "2", encrypted)


def test_garbage_that_is_signed_is_malformed_not_a_crash(crypto):
    for junk in ("not base64 !!", "AAAA", "QUJD" * 5):
        sig = crypto.sign("1", "2", junk)
        with pytest.raises(CryptoError):
            crypto.verify_and_decrypt(sig, "1", "2", junk)


def test_reply_envelope_round_trips(crypto):
    xml = text_reply_xml(to_user="ChenJiaShun", corp_id=CORP_ID, create_time=1, content="收到]]>")
    envelope = crypto.envelope(xml, timestamp="1476422779", nonce="42")
    env = parse_envelope(envelope.encode())
    import defusedxml.ElementTree as ET

    root = ET.fromstring(envelope)
    assert root.findtext("MsgSignature") == signature(TOKEN, "1476422779", "42", env.encrypt)
    back = crypto.decrypt(env.encrypt)
    assert ET.fromstring(back).findtext("Content") == "收到]]>"


def test_encoding_aes_key_shape():
    assert aes_key_ok(AES_KEY)
    assert not aes_key_ok(AES_KEY[:-1])
    assert not aes_key_ok(AES_KEY[:-1] + "!")
    with pytest.raises(ValueError):
        CallbackCrypto(TOKEN, "short", CORP_ID)


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><Encrypt>abc</Encrypt>",  # unclosed
        b"not xml at all",
        b"<xml><ToUserName>x</ToUserName></xml>",  # no Encrypt
        b'<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
        b'<!DOCTYPE xml SYSTEM "http://example.com/x.dtd"><xml><Encrypt>a</Encrypt></xml>',
    ],
)
def test_malformed_envelopes_are_refused(body):
    with pytest.raises(MalformedError):
        parse_envelope(body)


def test_a_doctype_inside_the_encrypted_message_is_refused():
    with pytest.raises(MalformedError):
        parse_callback('<!DOCTYPE x [<!ENTITY e "1">]><xml><MsgType>text</MsgType></xml>')
    with pytest.raises(MalformedError):
        parse_callback("<xml><Content>no type</Content></xml>")


def test_card_click_fields_are_read_raw():
    xml = message_xml(
        {
            "ToUserName": CORP_ID,
            "FromUserName": "zhangsan",
            "CreateTime": 1764036420,
            "MsgType": "event",
            "Event": "template_card_event",
            "EventKey": "收到 12",
            "TaskId": "mofan_3_ab_0",
            "CardType": "button_interaction",
            "ResponseCode": "rc123",
            "AgentID": 1000002,
        }
    )
    msg = parse_callback(xml)
    assert (msg.event, msg.event_key, msg.task_id, msg.response_code) == (
        "template_card_event",
        "收到 12",
        "mofan_3_ab_0",
        "rc123",
    )
    assert msg.msg_id is None
    assert msg.dedupe_key == "evt:zhangsan:1764036420:template_card_event:收到 12"


def test_cdata_cannot_be_closed_early():
    import defusedxml.ElementTree as ET

    assert ET.fromstring(f"<a>{cdata('x]]>y]]>')}</a>").text == "x]]>y]]>"
