"""The carriers a package ships with (快递公司): a code from this list, upper-case, whatever
case it was typed or called back in, so a package shipped as `sf` still meets its
callbacks from `SF`."""

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from domain.errors import DomainError, ErrorCode

CARRIERS: dict[str, str] = {
    "SF": "顺丰速运 SF Express",
    "ZTO": "中通快递 ZTO Express",
    "YTO": "圆通速递 YTO Express",
    "YD": "韵达速递 Yunda Express",
    "STO": "申通快递 STO Express",
    "JD": "京东物流 JD Logistics",
    "EMS": "邮政EMS China Post EMS",
    "DBL": "德邦快递 Deppon Express",
    "JTSD": "极兔速递 J&T Express",
    "BEST": "百世快递 BEST Express",
}


def carrier_code(raw: str) -> str:
    """The listed code a carrier was given as (any case, spaces around ignored); another is
    refused, naming the list."""
    code = raw.strip().upper()
    if code not in CARRIERS:
        raise DomainError(
            ErrorCode.VALIDATION,
            f"carrier: {raw.strip()[:32]!r} is not a carrier here; one of {', '.join(CARRIERS)}",
        )
    return code


def _listed(raw: str) -> str:
    try:
        return carrier_code(raw)
    except DomainError as err:
        raise ValueError(err.message.removeprefix("carrier: ")) from None


CarrierCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32), AfterValidator(_listed)
]
