"""The console speaks English and Chinese: every phrase its pages say has its Chinese, every
status it shows has a label in both, and the timeline's sentences read as sentences."""

import re
from pathlib import Path

import pytest

from api.console import orders as console_orders
from api.console import pages, words
from domain.after_sales import CaseAction, CaseStatus
from domain.models import (
    CaseType,
    CloseReason,
    EventType,
    OrderStatus,
    PackageStatus,
    PaymentChannel,
    ProductType,
    RefundRequestStatus,
    SubStatus,
    money,
)

TEMPLATES = Path(pages.HERE) / "templates"
SAID = re.compile(r"""_\(\s*(["'])(.+?)\1""")
IN_SET = re.compile(r"""\{%\s*set\s+\w+\s*=\s*(?:_\()?\{(.+?)\}""", re.S)
VALUE = re.compile(r""":\s*"([^"]+)\"""")


def _phrases() -> set[str]:
    found: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        found |= {m.group(2) for m in SAID.finditer(source)}
        for table in IN_SET.finditer(source):  # {% set buttons = {...} %}: each value is said
            found |= set(VALUE.findall(table.group(1)))
    found |= set(pages.DONE.values()) | set(console_orders.SORT_LABELS.values())
    found |= set(console_orders.FIELD_LABELS.values())
    return found


def test_every_phrase_of_the_console_has_its_chinese() -> None:
    phrases = _phrases()
    assert len(phrases) > 150  # the templates are read, not skipped
    missing = sorted(p for p in phrases if p not in words.ZH)
    assert missing == []
    keyed = [p for p in phrases if " " in p and p.islower() and p in words.EN]
    assert "bulk ship help" in keyed and "sign in help" in keyed


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("OrderStatus", OrderStatus),
        ("SubStatus", SubStatus),
        ("CloseReason", CloseReason),
        ("PackageStatus", PackageStatus),
        ("ProductType", ProductType),
        ("PaymentChannel", PaymentChannel),
        ("RefundRequestStatus", RefundRequestStatus),
        ("CaseType", CaseType),
        ("CaseStatus", CaseStatus),
        ("CaseAction", CaseAction),
    ],
)
def test_every_status_type_and_action_has_a_label_in_both(kind: str, values: object) -> None:
    for value in values:  # type: ignore[attr-defined]
        assert value.value in words.LABELS[kind], (kind, value)
        en, zh = words.label("en", kind, value), words.label("zh", kind, value)
        assert en != zh, (kind, value)
        assert not re.search(r"[A-Z]{2,}_", en + zh), (kind, value)  # no code names


def test_every_event_reads_as_a_sentence_with_money_in_yuan() -> None:
    assert set(words.SENTENCES) == {e.value for e in EventType}
    paid = {"channel": "alipay", "txn_id": "T1", "amount_cents": 123_456, "packages": ["p-1"]}
    assert words.sentence("en", EventType.PAID, paid, money) == "Paid ¥1,234.56 by Alipay (T1)"
    assert words.sentence("zh", EventType.PAID, paid, money) == "通过支付宝支付 ¥1,234.56（T1）"
    closed = {"reason": "PAYMENT_TIMEOUT", "note": ""}
    assert words.sentence("en", EventType.CLOSED, closed, money) == "Closed: Not paid in time"
    assert words.sentence("zh", EventType.CLOSED, closed, money) == "订单关闭：超时未支付"
    shipped = {"package_id": "o-1-1", "by": "supplier"}
    said = words.sentence("en", EventType.PACKAGE_SHIPPED, shipped, money)
    assert said == "Package o-1-1 shipped (supplier)"  # no empty gaps, no Python reprs
    for event in EventType:  # any data, even none: a sentence, never a template left open
        for lang in words.LANGS:
            assert "{" not in words.sentence(lang, event, {}, money)


def test_the_language_is_the_operators_choice_else_the_browsers() -> None:
    class Asked:
        def __init__(self, cookie: str = "", accept: str = "") -> None:
            self.cookies = {words.LANG_COOKIE: cookie} if cookie else {}
            self.headers = {"accept-language": accept} if accept else {}

    def of(**kw: str) -> str:
        return words.language(Asked(**kw))  # type: ignore[arg-type]

    assert of() == "en"
    assert of(accept="zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert of(accept="fr-FR, en-GB;q=0.8, zh;q=0.5") == "en"  # the first we speak
    assert of(accept="de") == "en"
    assert of(cookie="en", accept="zh-CN") == "en"  # the switch wins
    assert of(cookie="xx", accept="zh-TW") == "zh"  # an unknown choice is ignored


def test_the_readmes_pictures_of_the_console_are_there() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    pictures = re.findall(r"\]\((docs/img/[^)]+\.png)\)", readme)
    assert len(pictures) == 6
    for picture in pictures:
        path = Path(__file__).parents[2] / picture
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture


def test_the_sorts_are_the_same_in_the_store_the_api_and_the_console() -> None:
    from typing import get_args

    from api.orders import OrderSort
    from store.orders import SORTS

    assert set(SORTS) == set(get_args(OrderSort)) == set(console_orders.SORT_LABELS)
